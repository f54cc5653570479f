package redisstore

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// keyArgs tells, for each command the scripts may send, which of its arguments (after the
// command's name, from 0) are keys: -1 for all of them. A command missing here fails the
// test until it is added, with its keys.
var keyArgs = map[string][]int{
	"GET": {0}, "HGET": {0}, "HGETALL": {0}, "HMGET": {0}, "HSET": {0}, "HSETNX": {0}, "HDEL": {0}, "HEXISTS": {0},
	"ZCARD": {0}, "SCARD": {0}, "SMEMBERS": {0}, "SISMEMBER": {0}, "SADD": {0}, "SREM": {0},
	"LRANGE": {0}, "LTRIM": {0}, "LREM": {0}, "LPUSH": {0}, "RPUSH": {0}, "LPOP": {0}, "RPOP": {0},
	"ZRANGE": {0}, "ZRANGEBYSCORE": {0}, "ZREM": {0}, "ZADD": {0}, "ZSCORE": {0}, "ZREMRANGEBYSCORE": {0},
	"PEXPIREAT": {0}, "PEXPIRE": {0}, "EXPIRE": {0}, "INCR": {0}, "HINCRBY": {0}, "SET": {0}, "PTTL": {0},
	"DEL": {-1}, "EXISTS": {-1}, "UNLINK": {-1},
	"TIME": nil, "PUBLISH": nil, // a channel is not a key: Redis Cluster broadcasts it
}

// Every key a script touches must be declared in KEYS: Redis Cluster routes a script, and
// checks a migrating slot, by its declared keys only, so a key built in Lua (from the key
// prefix, an id, ARGV) can be written on a node that no longer owns its slot. This reads every
// script of the package from its source and checks that each key argument of each
// redis.call is KEYS[…] itself, never a name or a concatenation.
func TestScriptsDeclareEveryKey(t *testing.T) {
	scripts := packageScripts(t)
	if len(scripts) < 2 {
		t.Fatalf("found %d scripts in the package's source; the claim and commit scripts at least were expected", len(scripts))
	}
	for name, src := range scripts {
		for _, problem := range undeclaredKeys(src) {
			t.Errorf("%s: %s", name, problem)
		}
	}
}

// The check itself finds what it is meant to find.
func TestUndeclaredKeysFound(t *testing.T) {
	for _, src := range []string{
		`redis.call('HGETALL', ARGV[1] .. id)`,
		`local k = KEYS[1]; redis.call('GET', k)`,
		`redis.call('HSET', KEYS[1] .. ':ann', 'a', 1)`,
		`redis.call(cmd, KEYS[1])`,
		`redis.call('FLUSHALL')`,
		`local call = redis.call; call('GET', KEYS[1])`,
		`redis.pcall('DEL', KEYS[1], 'other')`,
	} {
		if len(undeclaredKeys(src)) == 0 {
			t.Errorf("no problem found in %s", src)
		}
	}
	ok := `redis.call('ZADD', KEYS[x.at + 3], unpack(scored)) -- redis.call('GET', ARGV[1])
redis.call('HSET', KEYS[seen[id]], 'status', 'a(b', "c'd")
redis.call('PUBLISH', channel, 'x')`
	if p := undeclaredKeys(ok); len(p) > 0 {
		t.Errorf("problems found in a script without any: %v", p)
	}
}

// packageScripts returns the Lua source of every redis.NewScript call in the package's
// non-test files, by the name of the variable it is assigned to (or its position).
func packageScripts(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	var parsed []*ast.File
	consts := map[string]ast.Expr{} // the package's constants, by name
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, file)
		for _, d := range file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					v := spec.(*ast.ValueSpec)
					for i, n := range v.Names {
						if i < len(v.Values) {
							consts[n.Name] = v.Values[i]
						}
					}
				}
			}
		}
	}
	for _, file := range parsed {
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "NewScript" {
				return true
			}
			name := fset.Position(call.Pos()).String()
			lua, ok := constString(call.Args[0], consts)
			if !ok {
				t.Errorf("%s: a script whose source is not made of string literals and constants cannot be checked", name)
				return true
			}
			out[name] = lua
			return true
		})
	}
	return out
}

// constString evaluates e, a string made of literals and package constants joined by +.
func constString(e ast.Expr, consts map[string]ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		v, ok := consts[e.Name]
		if !ok {
			return "", false
		}
		return constString(v, consts)
	case *ast.ParenExpr:
		return constString(e.X, consts)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := constString(e.X, consts)
		if !ok {
			return "", false
		}
		y, ok := constString(e.Y, consts)
		return x + y, ok
	}
	return "", false
}

// undeclaredKeys returns a line for each redis.call (or pcall) of src whose command is not a
// literal the test knows, or whose key argument is anything but KEYS[…]; and for each use of
// redis.call other than a call.
func undeclaredKeys(src string) []string {
	var problems []string
	code := stripLua(src)
	for _, fn := range []string{"redis.call", "redis.pcall"} {
		for off := 0; ; {
			i := strings.Index(code[off:], fn)
			if i < 0 {
				break
			}
			at := off + i + len(fn)
			off = at
			rest := strings.TrimLeft(code[at:], " \t")
			if !strings.HasPrefix(rest, "(") {
				problems = append(problems, fn+" used other than in a call: "+line(src, at))
				continue
			}
			args := splitArgs(rest[1:])
			if len(args) == 0 {
				problems = append(problems, "a call without a command: "+line(src, at))
				continue
			}
			cmd, err := strconv.Unquote(strings.Replace(args[0], "'", `"`, 2))
			if err != nil || !strings.HasPrefix(args[0], "'") && !strings.HasPrefix(args[0], `"`) {
				problems = append(problems, "a command that is not a literal: "+line(src, at))
				continue
			}
			positions, known := keyArgs[strings.ToUpper(cmd)]
			if !known {
				problems = append(problems, "command "+cmd+" not in keyArgs (add it with its keys): "+line(src, at))
				continue
			}
			for _, p := range positions {
				keys := args[1:]
				if p >= 0 {
					if p >= len(keys) {
						problems = append(problems, "a key argument missing: "+line(src, at))
						continue
					}
					keys = keys[p : p+1]
				}
				for _, k := range keys {
					if !isKeysIndex(k) {
						problems = append(problems, "key "+k+" is not KEYS[…]: "+line(src, at))
					}
				}
			}
		}
	}
	return problems
}

// isKeysIndex reports whether expr is KEYS[…] as a whole, its index not a concatenation.
func isKeysIndex(expr string) bool {
	if !strings.HasPrefix(expr, "KEYS[") || !strings.HasSuffix(expr, "]") {
		return false
	}
	inner := expr[len("KEYS[") : len(expr)-1]
	depth := 0
	for _, r := range inner {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
			if depth < 0 { // KEYS[1] .. x[2]: the first bracket closed before the end
				return false
			}
		}
	}
	return depth == 0 && !strings.Contains(inner, "..")
}

// stripLua blanks out src's comments and the contents of its string literals (keeping their
// quotes and every offset), so that neither is taken for code.
func stripLua(src string) string {
	b := []byte(src)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '-' && i+1 < len(b) && b[i+1] == '-':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case b[i] == '\'' || b[i] == '"':
			q := b[i]
			for i++; i < len(b) && b[i] != q; i++ {
				if b[i] == '\\' && i+1 < len(b) {
					b[i] = ' '
					i++
				}
				if b[i] != '\n' {
					b[i] = 'x'
				}
			}
		}
	}
	// Command names are wanted as they are: put back the literals that follow "call(".
	out := []byte(string(b))
	for _, fn := range []string{"redis.call(", "redis.pcall("} {
		for off := 0; ; {
			i := strings.Index(string(out[off:]), fn)
			if i < 0 {
				break
			}
			start := off + i + len(fn)
			for start < len(out) && out[start] == ' ' {
				start++
			}
			if start < len(out) && (out[start] == '\'' || out[start] == '"') {
				end := start + 1
				for end < len(out) && out[end] != out[start] {
					end++
				}
				copy(out[start:end], src[start:end])
			}
			off = start
		}
	}
	return string(out)
}

// splitArgs splits the arguments of a call whose "(" has been read, up to its ")", at the
// commas outside brackets.
func splitArgs(s string) []string {
	var args []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				if a := strings.TrimSpace(s[start:i]); a != "" || len(args) > 0 {
					args = append(args, a)
				}
				return args
			}
			depth--
		case ',':
			if depth == 0 {
				args = append(args, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return args
}

// line returns the line of code around offset at, for an error.
func line(code string, at int) string {
	start := strings.LastIndexByte(code[:at], '\n') + 1
	end := strings.IndexByte(code[at:], '\n')
	if end < 0 {
		end = len(code) - at
	}
	return strings.TrimSpace(code[start : at+end])
}
