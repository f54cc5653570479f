package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrBusyKey is returned by MigrateSlot when the target already holds a key being moved:
// someone wrote the key on the source after it had moved (redis-cli --cluster reshard aborts
// with "Target key exists" there).
var ErrBusyKey = errors.New("redisproc: target key exists")

// clusterTimeout bounds how long a cluster may take to converge after a change.
const clusterTimeout = 60 * time.Second

// Cluster is a Redis Cluster of redis-server processes on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters×(1+replicas) cluster-enabled servers in subdirectories of dir,
// joins them with `redis-cli --cluster create`, and waits until every node says the cluster
// is ok and every replica has synchronised with its master. nodeTimeout is their
// cluster-node-timeout: how long a master may be unreachable before its replica takes over.
func StartCluster(ctx context.Context, dir string, masters, replicas int, nodeTimeout time.Duration) (*Cluster, error) {
	c := &Cluster{}
	for i := range masters * (1 + replicas) {
		s, err := Start(ctx, filepath.Join(dir, "node"+strconv.Itoa(i)),
			"--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.WaitHealthy(ctx, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Close kills every node.
func (c *Cluster) Close() {
	for _, s := range c.Nodes {
		s.Close()
	}
}

// WaitHealthy waits until every node but those in down says cluster_state:ok, agrees on who
// serves each of the 16384 slots, and every replica's link to its master is up.
func (c *Cluster) WaitHealthy(ctx context.Context, down []*Server) error {
	deadline := time.Now().Add(clusterTimeout)
	var why error
	for {
		if why = c.healthy(down); why == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redisproc: the cluster is not healthy within %s: %w", clusterTimeout, why)
		}
		time.Sleep(50 * time.Millisecond) // polling the cluster with a deadline
	}
}

func (c *Cluster) healthy(down []*Server) error {
	var first map[int]string
	for _, s := range c.Nodes {
		if contains(down, s) {
			continue
		}
		info, err := Command(s.Addr(), time.Second, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: not cluster_state:ok", s.Addr())
		}
		nodes, err := c.nodes(s)
		if err != nil {
			return err
		}
		owners := map[int]string{}
		for _, n := range nodes {
			if n.master && !n.failed {
				for _, r := range n.slots {
					owners[r[0]] = n.addr // each range's start identifies it well enough
				}
			}
		}
		if first == nil {
			first = owners
		} else if !sameOwners(first, owners) {
			return fmt.Errorf("%s disagrees about the slots' masters", s.Addr())
		}
		repl, err := Command(s.Addr(), time.Second, "INFO", "replication")
		if err != nil {
			return err
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("replica %s: link to its master not up", s.Addr())
		}
	}
	return nil
}

func sameOwners(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func contains(l []*Server, s *Server) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr       string
	master, failed bool
	slots          [][2]int
}

// nodes reads CLUSTER NODES as s sees it.
func (c *Cluster) nodes(s *Server) ([]clusterNode, error) {
	text, err := Command(s.Addr(), time.Second, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := f[2]
		n := clusterNode{id: f[0], addr: addr, master: strings.Contains(flags, "master"),
			failed: strings.Contains(flags, "fail") || strings.Contains(f[7], "disconnected")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// Slot returns the cluster slot of key.
func (c *Cluster) Slot(key string) (int, error) {
	for _, s := range c.Nodes {
		if v, err := Command(s.Addr(), time.Second, "CLUSTER", "KEYSLOT", key); err == nil {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("redisproc: no node answers CLUSTER KEYSLOT")
}

// MasterOf returns the node that serves slot, as the first live node (not in down) sees it.
func (c *Cluster) MasterOf(slot int, down ...*Server) (*Server, error) {
	for _, s := range c.Nodes {
		if contains(down, s) {
			continue
		}
		nodes, err := c.nodes(s)
		if err != nil {
			continue
		}
		for _, n := range nodes {
			if !n.master || n.failed {
				continue
			}
			for _, r := range n.slots {
				if slot >= r[0] && slot <= r[1] {
					return c.byAddr(n.addr)
				}
			}
		}
	}
	return nil, fmt.Errorf("redisproc: no live node knows who serves slot %d", slot)
}

// Masters returns the live masters (not in down), as the first live node sees them.
func (c *Cluster) Masters(down ...*Server) ([]*Server, error) {
	for _, s := range c.Nodes {
		if contains(down, s) {
			continue
		}
		nodes, err := c.nodes(s)
		if err != nil {
			continue
		}
		var out []*Server
		for _, n := range nodes {
			if n.master && !n.failed && len(n.slots) > 0 {
				m, err := c.byAddr(n.addr)
				if err != nil {
					return nil, err
				}
				out = append(out, m)
			}
		}
		return out, nil
	}
	return nil, errors.New("redisproc: no live node answers CLUSTER NODES")
}

func (c *Cluster) byAddr(addr string) (*Server, error) {
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("redisproc: %s is not a node of this cluster", addr)
}

// ID returns a node's cluster node id.
func (s *Server) ID() (string, error) { return Command(s.Addr(), time.Second, "CLUSTER", "MYID") }

// MigrateSlot moves slot from src to dst while clients keep using it, the way
// `redis-cli --cluster reshard` does: dst IMPORTING, src MIGRATING, the slot's keys moved
// batch keys at a time with MIGRATE, then every master told that dst serves it. With
// replace, a key that already exists on dst is overwritten (reshard's --cluster-replace);
// without, the migration stops at it with ErrBusyKey and leaves the slot half-moved, for
// the caller to report and finish with replace. moved, if not nil, is called after each
// batch with the number of keys moved so far.
func (c *Cluster) MigrateSlot(ctx context.Context, slot int, src, dst *Server, batch int, replace bool, moved func(int)) error {
	srcID, err := src.ID()
	if err != nil {
		return err
	}
	dstID, err := dst.ID()
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := Command(dst.Addr(), time.Second, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID); err != nil {
		return err
	}
	if _, err := Command(src.Addr(), time.Second, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID); err != nil {
		return err
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		keys, err := Strings(src.Addr(), time.Second, "CLUSTER", "GETKEYSINSLOT", s, strconv.Itoa(batch))
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(dst.Port), "", "0", "5000"}
		if replace {
			args = append(args, "REPLACE")
		}
		args = append(args, "KEYS")
		args = append(args, keys...)
		if _, err := Command(src.Addr(), 10*time.Second, args...); err != nil {
			var e errReply
			// MIGRATE relays the target's refusal: "ERR Target instance replied with error: BUSYKEY …".
			if errors.As(err, &e) && strings.Contains(string(e), "BUSYKEY") {
				return fmt.Errorf("%w: slot %d, one of %v: %v", ErrBusyKey, slot, keys, err)
			}
			return err
		}
		total += len(keys)
		if moved != nil {
			moved(total)
		}
	}
	// The target first, then the source, then everyone else, as the Redis manual says, so
	// that no client is sent back and forth between them.
	order := []*Server{dst, src}
	masters, err := c.Masters()
	if err != nil {
		return err
	}
	for _, m := range masters {
		if m != dst && m != src {
			order = append(order, m)
		}
	}
	for _, m := range order {
		if _, err := Command(m.Addr(), time.Second, "CLUSTER", "SETSLOT", s, "NODE", dstID); err != nil {
			return err
		}
	}
	return nil
}
