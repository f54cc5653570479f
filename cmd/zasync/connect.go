package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisEnv names the environment variable that gives the Redis URL when --redis is empty.
const redisEnv = "ZASYNC_REDIS"

// redisURLHelp is the flag help shared by every command that talks to Redis.
const redisURLHelp = "Redis URL (default $" + redisEnv + "): redis://[user:password@]host:port[/db], rediss:// for TLS; " +
	"redis+cluster://host:port?addr=host2:port2 for a Cluster; redis://host:port?master_name=NAME&addr=host2:port2 for Sentinel"

// redisFlags say which Redis a command uses and, over TLS, whom to trust and which
// certificate to present.
type redisFlags struct {
	url, tlsCA, tlsCert, tlsKey string
}

// addRedisFlags registers --redis (with urlHelp) and the TLS flags on fs.
func addRedisFlags(fs *flagSet, urlHelp string) *redisFlags {
	r := &redisFlags{}
	fs.StringVar(&r.url, "redis", "", urlHelp)
	fs.StringVar(&r.tlsCA, "tls-ca", "", "with rediss://: trust only the CA certificates in this PEM file (default: the system's, or those of $SSL_CERT_FILE)")
	fs.StringVar(&r.tlsCert, "tls-cert", "", "with rediss://: present this client certificate (a PEM file)")
	fs.StringVar(&r.tlsKey, "tls-key", "", "the private key of --tls-cert (a PEM file; default: --tls-cert's own file)")
	return r
}

// connection is the Redis a command uses, and how to let it go.
type connection struct {
	client   redis.UniversalClient
	url      string // for other commands: the URL this connection was made from (secrets included)
	addr     string // for messages
	embedded *miniredis.Miniredis
}

// connect opens the Redis r names (or ZASYNC_REDIS); with neither, an embedded Redis on a
// loopback port, announced on stderr. It checks that the server answers.
func connect(ctx context.Context, r *redisFlags, stderr io.Writer) (*connection, error) {
	raw := r.url
	if raw == "" {
		raw = os.Getenv(redisEnv)
	}
	if raw == "" {
		if r.tlsCA != "" || r.tlsCert != "" || r.tlsKey != "" {
			return nil, usagef("--tls-ca, --tls-cert and --tls-key need a rediss:// URL (--redis or %s)", redisEnv)
		}
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("start the embedded Redis: %w", err)
		}
		u := "redis://" + m.Addr()
		fmt.Fprintf(stderr, "zasync: no Redis given: using an embedded one at %s (it keeps nothing after exit)\n", redactURL(u))
		return &connection{client: redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2}), url: u, addr: m.Addr(), embedded: m}, nil
	}
	c, addr, err := r.dial(raw)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %s", addr, scrub(err.Error(), raw))
	}
	return &connection{client: c, url: raw, addr: addr}, nil
}

// connectExisting is connect for commands that read what others stored: an embedded Redis
// would be empty, so a URL is required.
func connectExisting(ctx context.Context, r *redisFlags, stderr io.Writer) (*connection, error) {
	if r.url == "" && os.Getenv(redisEnv) == "" {
		return nil, usagef("no Redis given: pass --redis URL or set %s (zasync serve prints the URL of its embedded Redis)", redisEnv)
	}
	return connect(ctx, r, stderr)
}

// dial makes the client a URL names: a single node, a Cluster (scheme redis+cluster or
// rediss+cluster) or a Sentinel-watched master (a master_name parameter). RESP2 throughout:
// go-redis spends noticeable time checking for RESP3 pushes. Every message shows the URL
// with its passwords redacted.
func (r *redisFlags) dial(raw string) (redis.UniversalClient, string, error) {
	malformed := func(what string, err error) error {
		var ue *url.Error
		if errors.As(err, &ue) { // it quotes the URL whole
			err = &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
		}
		return usagef("malformed Redis %sURL %q: %s", what, redactURL(raw), scrub(err.Error(), raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", malformed("", err)
	}
	switch {
	case strings.HasSuffix(u.Scheme, "+cluster"):
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, "", malformed("Cluster ", err)
		}
		opt.Protocol = 2
		if err := r.applyTLS(opt.TLSConfig); err != nil {
			return nil, "", err
		}
		return redis.NewClusterClient(opt), strings.Join(opt.Addrs, ","), nil
	case u.Query().Has("master_name"):
		opt, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, "", malformed("Sentinel ", err)
		}
		opt.Protocol = 2
		if u.Scheme == "rediss" && opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if err := r.applyTLS(opt.TLSConfig); err != nil {
			return nil, "", err
		}
		return redis.NewFailoverClient(opt), "Sentinel " + strings.Join(opt.SentinelAddrs, ","), nil
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, "", malformed("", err)
	}
	opt.Protocol = 2
	if err := r.applyTLS(opt.TLSConfig); err != nil {
		return nil, "", err
	}
	return redis.NewClient(opt), opt.Addr, nil
}

// applyTLS adds the CA and the client certificate of the TLS flags to cfg, the TLS
// configuration of a rediss:// URL (nil for redis://, where the flags are an error).
func (r *redisFlags) applyTLS(cfg *tls.Config) error {
	if r.tlsCA == "" && r.tlsCert == "" && r.tlsKey == "" {
		return nil
	}
	if cfg == nil {
		return usagef("--tls-ca, --tls-cert and --tls-key need a rediss:// URL")
	}
	if r.tlsCA != "" {
		pem, err := os.ReadFile(r.tlsCA)
		if err != nil {
			return usagef("--tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usagef("--tls-ca %s: no PEM certificate in it", r.tlsCA)
		}
		cfg.RootCAs = pool
	}
	switch {
	case r.tlsCert != "":
		key := r.tlsKey
		if key == "" {
			key = r.tlsCert
		}
		cert, err := tls.LoadX509KeyPair(r.tlsCert, key)
		if err != nil {
			return usagef("--tls-cert %s, --tls-key %s: %v", r.tlsCert, key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case r.tlsKey != "":
		return usagef("--tls-key needs --tls-cert")
	}
	return nil
}

// redacted stands for a password in anything shown.
const redacted = "xxxxx"

// passwordParam matches a query parameter holding a password, as Sentinel URLs have.
var passwordParam = regexp.MustCompile(`(?i)([?&;][^=&#]*password=)([^&#]*)`)

// redactURL returns a Redis URL fit to show: the password of its user information and of
// any password parameter replaced by xxxxx. Every URL or address a command prints goes
// through it (or through scrub, for messages that may quote one).
func redactURL(raw string) string {
	shown, _ := splitSecrets(raw)
	return shown
}

// scrub removes from msg the passwords of the URL raw, as written and unescaped, for
// messages of libraries that may quote the URL or a part of it.
func scrub(msg, raw string) string {
	_, secrets := splitSecrets(raw)
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return msg
}

// splitSecrets returns raw with its passwords redacted, and the passwords (as written and
// unescaped). A malformed URL is read more loosely, hiding more rather than less: its
// password may hold characters that end the authority of a well-formed one.
func splitSecrets(raw string) (string, []string) {
	var secrets []string
	keep := func(s string) {
		if s == "" {
			return
		}
		secrets = append(secrets, s)
		if u, err := url.PathUnescape(s); err == nil && u != s {
			secrets = append(secrets, u)
		}
		if u, err := url.QueryUnescape(s); err == nil && u != s {
			secrets = append(secrets, u)
		}
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := raw[start:]
	end := len(rest)
	if _, err := url.Parse(raw); err == nil {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			end = i
		}
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		if c := strings.Index(rest[:at], ":"); c >= 0 {
			keep(rest[c+1 : at])
			rest = rest[:c+1] + redacted + rest[at:]
		}
	}
	rest = passwordParam.ReplaceAllStringFunc(rest, func(m string) string {
		sub := passwordParam.FindStringSubmatch(m)
		keep(sub[2])
		return sub[1] + redacted
	})
	// The longest first, so that a password containing another is hidden whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	return raw[:start] + rest, secrets
}

// close closes the client, and stops an embedded Redis.
func (c *connection) close() {
	c.client.Close()
	if c.embedded != nil {
		c.embedded.Close()
	}
}
