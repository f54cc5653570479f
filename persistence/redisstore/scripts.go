package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// The hot path of a job, claim and commit, runs as Lua scripts: one round trip each, for a
// whole batch, with no race to lose. A script is atomic, so its check and its write see the
// same state, exactly as a WATCH … MULTI … EXEC that did not lose its race. Each script takes
// only the common case and leaves anything else, unwritten, to the optimistic transaction
// (claim.go, runs.go), which stays the reference: a claim with a filter, quotas or an expired
// job, a dispatcher that is not activated, alive and under its size; a run whose fence,
// status or record does not hold. So every rule is written once in Go, and the scripts only
// repeat the common case.
//
// Every key a script touches is under the queue's hash tag. The job keys are declared
// (KEYS); the others are built from the queue's key prefix, in the same cluster slot, as
// hibiken/asynq's scripts do.

// claimScript claims up to an agent's free slots from the head of a queue, when the claim
// needs no filter: put-back jobs first, then due jobs by position.
//
// KEYS[1] dispatchers hash, KEYS[2] the dispatcher's ping, KEYS[3] the agent's zset,
// KEYS[4] its parked set, KEYS[5] putback list, KEYS[6] pending zset, KEYS[7] agents set.
// ARGV[1] job key prefix, ARGV[2] dispatcher UUID, ARGV[3] owner "uuid/agent", ARGV[4] size,
// ARGV[5] max (0: none), ARGV[6] scan limit, ARGV[7] now µs, ARGV[8] highest due position
// µs, ARGV[9] "1" to start the jobs.
//
// It returns {"fallback"} and writes nothing when the claim is not the common case: the
// dispatcher has no activated, alive record, or a candidate names quotas, has a begin_by
// deadline that passed, or has a status or attempt it cannot read; {"full", held, parked}
// when the agent has no free slot (held jobs, parked ones among them). Otherwise it drops
// the queue entries of jobs that are gone or no longer pending (a claim after a crash),
// claims, and returns {"ok", id, hash, id, …}: each claimed job as it was before the claim,
// for the caller to change as the claim did; a hash is its fields and values joined by NUL
// bytes, which no field holds (names are restricted, JSON escapes control characters). A
// claimed job whose other fields cannot be read (a record corrupted by hand) is claimed all
// the same and handed out with its Corrupt set, for its claimer to fail it.
var claimScript = redis.NewScript(`
local prefix, uuid, owner = ARGV[1], ARGV[2], ARGV[3]
local size, maxn, scan = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now, due, start = tonumber(ARGV[7]), ARGV[8], ARGV[9] == '1'
local fallback = {'fallback'}

-- The record is JSON written by Go (encoding/json, no spaces); only two numbers are needed.
local raw = redis.call('HGET', KEYS[1], uuid)
if not raw then return fallback end
local activated = tonumber(string.match(raw, '"activated":(%d+)') or '0')
local death = tonumber(string.match(raw, '"ping_death_interval":(%d+)') or '')
if activated == 0 or not death then return fallback end
local last = activated
local ping = redis.call('GET', KEYS[2])
if ping then
  local p = tonumber(ping)
  if not p then return fallback end
  if p > last then last = p end
end
if last + death < now then return fallback end

local held, parked = redis.call('ZCARD', KEYS[3]), redis.call('SCARD', KEYS[4])
local free = size - (held - parked)
if maxn > 0 and maxn < free then free = maxn end
if free <= 0 then return {'full', held, parked} end

local known = {new=true, assigned=true, active=true, callbacks=true, completed=true}
-- The jobs taken: ids, whether from the put-back list, hashes as read, next attempts.
local ids, putbacks, flats, attempts, stale, seen = {}, {}, {}, {}, {}, {}
local examined = 0
-- look examines one candidate; it returns false to fall back.
local function look(id, putback)
  if seen[id] then return true end
  seen[id] = true
  examined = examined + 1
  local flat = redis.call('HGETALL', prefix .. id)
  local st, quotas, by, after, created, attempt
  for i = 1, #flat, 2 do
    local f = flat[i]
    if f == 'status' then st = flat[i + 1]
    elseif f == 'quotas' then quotas = true
    elseif f == 'begin_by' then by = flat[i + 1]
    elseif f == 'begin_after' then after = flat[i + 1]
    elseif f == 'created' then created = flat[i + 1]
    elseif f == 'attempt' then attempt = flat[i + 1]
    end
  end
  if st ~= 'pending' then
    if known[st] or #flat == 0 then
      stale[#stale + 1] = id
      return true
    end
    return false
  end
  if quotas then return false end
  if by then
    by, after = tonumber(by), tonumber(after or created or '0') -- no begin_after: created
    if not by or not after or after + by < now then return false end
  end
  attempt = tonumber(attempt or '0')
  if not attempt then return false end
  local n = #ids + 1
  ids[n], putbacks[n], flats[n], attempts[n] = id, putback, flat, tostring(attempt + 1)
  return true
end
-- Candidates come in windows a little larger than the free slots, up to the scan limit.
local window = math.min(scan, free + 4)
local off = 0
while #ids < free and examined < scan do
  local cands = redis.call('LRANGE', KEYS[5], off, off + window - 1)
  for _, id in ipairs(cands) do
    if #ids == free then break end
    if not look(id, true) then return fallback end
  end
  if #cands < window then break end
  off = off + window
end
off = 0
while #ids < free and examined < scan do
  local cands = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', due, 'LIMIT', off, window)
  for _, id in ipairs(cands) do
    if #ids == free then break end
    if not look(id, false) then return fallback end
  end
  if #cands < window then break end
  off = off + window
end

-- Queue entries go in one command per key, the claimed jobs' records one by one.
local gone, scored = {}, {}
for _, id in ipairs(stale) do
  gone[#gone + 1] = id
  redis.call('LREM', KEYS[5], 0, id)
end
local out = {'ok'}
for n, id in ipairs(ids) do
  gone[#gone + 1] = id
  if putbacks[n] then redis.call('LREM', KEYS[5], 0, id) end
  if start then
    redis.call('HSET', prefix .. id, 'status', 'active', 'owner', owner, 'holder', owner, 'attempt', attempts[n], 'active_start', ARGV[7])
  else
    redis.call('HSET', prefix .. id, 'status', 'assigned', 'owner', owner, 'holder', owner, 'attempt', attempts[n])
  end
  scored[#scored + 1] = ARGV[7]
  scored[#scored + 1] = id
  out[#out + 1] = id
  out[#out + 1] = table.concat(flats[n], '\0')
end
if #gone > 0 then redis.call('ZREM', KEYS[6], unpack(gone)) end
if #ids > 0 then
  redis.call('ZADD', KEYS[3], unpack(scored))
  -- An agent that holds jobs is listed already: only claims add jobs to it, and they list it.
  if held == 0 then redis.call('SADD', KEYS[7], owner) end
end
return out
`)

// commitScript commits several runs of one queue: for each run whose record is readable, in
// ACTIVE, with the fence's owner and attempt, the outcome is stored as Store.commit does.
//
// KEYS[i] the job key of run i. ARGV[1] the queue's key prefix, ARGV[2] now µs, ARGV[3]
// retention ms (0: keep forever), ARGV[4] the oldest completion kept in histories, µs,
// ARGV[5] when a record completed now expires, Unix ms by the server's clock ("" when the
// caller does not know that clock: the script reads it); then, for each run, its owner, its
// attempt, its flags, its outcome (the result, or the failure JSON), and the extra values its
// flags announce, in this order. The flags are six letters (one value, not six: each value a
// script is given costs about as much as reading a field):
//
//  1. "c" to complete the job when it has no callbacks, else "-";
//  2. "l" when the caller knows the job (Commit.Known: see knownLean), else "-";
//  3. "r" when the outcome is a result, "f" a failure;
//  4. the retry counters: "-" to keep them, "0" to clear them, "s" to set them (extra value:
//     their JSON);
//  5. a known job's holder: "o" its owner, "0" none, "h" another (extra value: the holder);
//  6. a known job's quota names: "0" none, "q" some (extra value: their JSON).
//
// A known job is read lean: only the fields that others may change while it runs (status,
// owner, attempt, callbacks, the annotated mark), not the whole record: reading a record field
// by field into Lua is most of a commit's cost. Its holder and quota names cannot change while
// the fence holds, so the caller's are used; its retry counters are written by the run alone,
// so they are kept, set or deleted without being read. The ids of the jobs it completes are
// published on the queue's done channel in one message, separated by spaces.
//
// It returns a string of one letter per run, then a job for each run whose letter asks for
// one: "o", committed, a known job the caller has; "O", committed, followed by the job as it
// was before the commit, for the caller to change as the commit did; "c", not committed,
// followed by the job as it is (empty if it does not exist): its fence, status or quota list
// does not hold, and the caller says why. (One string, not two values per run: every value a
// script returns costs Redis and the client alike.) A job is its fields and values joined by
// NUL bytes, as the claim answers it. (A run whose other fields cannot be read, a record
// corrupted by hand, is committed all the same and answered with its Corrupt set.)
var commitScript = redis.NewScript(`
local base, now, retention, oldest = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- Completed records expire at an absolute time by the server's clock: Redis rewrites a
-- relative PEXPIRE as a PEXPIREAT for its replicas, about 2 % of the server's work per job.
local expireAt = ARGV[5]
local function expiry()
  if expireAt == '' then
    local t = redis.call('TIME')
    expireAt = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + retention)
  end
  return expireAt
end
local codes, out = {}, {''}
-- Writes to keys shared by the batch (an agent's jobs, parked set and history) go in one
-- command per key after the loop; the records one by one.
local agents, order, done = {}, {}, {}
local function agent(holder)
  local a = agents[holder]
  if not a then
    local k = string.gsub(holder, '/', ':', 1)
    a = {parked = base .. 'parked:' .. k, jobs = base .. 'agent:' .. k, history = base .. 'completed:' .. k,
      unpark = {}, leave = {}, completed = {}}
    agents[holder] = a
    order[#order + 1] = a
  end
  return a
end
local C, L, F, ZERO, S, O, H, Q = string.byte('clf0sohq', 1, 8) -- the flags' letters
local a = 6 -- the next run's first value
for i, key in ipairs(KEYS) do
  local owner, attempt, flags, outcome = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  a = a + 4
  local fc, fl, fo, fr, fh, fq = string.byte(flags, 1, 6)
  local complete, lean = fc == C, fl == L
  local result, failure = outcome, ''
  if fo == F then result, failure = '', outcome end
  local retry = '-'
  if fr == ZERO then
    retry = ''
  elseif fr == S then
    retry, a = ARGV[a], a + 1
  end
  local knownHolder, knownQuotas
  if fh == O then
    knownHolder = owner
  elseif fh == H then
    knownHolder, a = ARGV[a], a + 1
  end
  if fq == Q then knownQuotas, a = ARGV[a], a + 1 end
  local flat
  local st, ow, at, holder, quotas, callbacks, hasResult, hasFailure, hasRetry, waiting, parked, annotated
  if lean then
    local v = redis.call('HMGET', key, 'status', 'owner', 'attempt', 'callbacks', 'annotated')
    st, ow, at, callbacks, annotated = v[1], v[2], v[3], v[4], v[5]
    holder, quotas = knownHolder, knownQuotas
    hasRetry = true -- not read: counters the caller asks to clear are deleted unread
    -- The whole record is read when the commit is not the common one. (An if, not an
    -- assignment of 'not a and b' to a variable that exists: miniredis's Lua gets that wrong.)
    if callbacks or st ~= 'active' or ow ~= owner or at ~= attempt then lean = false end
  end
  if not lean then
    flat = redis.call('HGETALL', key)
    st, ow, at, holder, quotas, callbacks = nil, nil, nil, nil, nil, nil
    hasRetry, waiting, parked, annotated = nil, nil, nil, nil
    for j = 1, #flat, 2 do
      local f = flat[j]
      if f == 'status' then st = flat[j + 1]
      elseif f == 'owner' then ow = flat[j + 1]
      elseif f == 'attempt' then at = flat[j + 1]
      elseif f == 'holder' then holder = flat[j + 1]
      elseif f == 'quotas' then quotas = flat[j + 1]
      elseif f == 'callbacks' then callbacks = true
      elseif f == 'result' then hasResult = true
      elseif f == 'failure' then hasFailure = true
      elseif f == 'retry' then hasRetry = true
      elseif f == 'waiting_on' then waiting = true
      elseif f == 'parked' then parked = true
      elseif f == 'annotated' then annotated = true
      end
    end
  end
  local ok = st == 'active' and ow == owner and at == attempt
  local names
  if ok and quotas then
    ok, names = pcall(cjson.decode, quotas)
    if type(names) ~= 'table' then ok = false end
  end
  if not ok then
    codes[i] = 'c'
    flat = flat or redis.call('HGETALL', key)
  else
    codes[i] = flat and 'O' or 'o'
    local id = string.sub(key, #base + 5)
    if names then
      for _, n in ipairs(names) do redis.call('SREM', base .. 'quota:' .. n, id) end
    end
    local h = holder and agent(holder)
    if h and parked then h.unpark[#h.unpark + 1] = id end
    local field, value = 'result', result
    local del
    if result ~= '' then
      if hasFailure then del = {'failure'} end
    else
      field, value = 'failure', failure
      if hasResult then del = {'result'} end
    end
    local set
    if retry == '' then
      if hasRetry then del = del or {}; del[#del + 1] = 'retry' end
    elseif retry ~= '-' then
      set = {'retry', retry}
    end
    if waiting then del = del or {}; del[#del + 1] = 'waiting_on' end
    if parked then del = del or {}; del[#del + 1] = 'parked' end
    local status = 'callbacks'
    if complete and not callbacks then
      status = 'completed'
      if h then h.leave[#h.leave + 1] = id end
      local by = h or (ow and agent(ow))
      if by then
        by.completed[#by.completed + 1] = now
        by.completed[#by.completed + 1] = id
      end
      if retention > 0 then
        redis.call('PEXPIREAT', key, expiry())
        if annotated then redis.call('PEXPIREAT', key .. ':ann', expiry()) end
      end
      done[#done + 1] = id
    end
    if del then redis.call('HDEL', key, unpack(del)) end
    if status == 'completed' then
      if set then
        redis.call('HSET', key, 'active_end', now, field, value, 'status', status, set[1], set[2])
      else
        redis.call('HSET', key, 'active_end', now, field, value, 'status', status)
      end
    elseif set then
      redis.call('HSET', key, 'active_end', now, field, value, 'status', status, set[1], set[2])
    else
      redis.call('HSET', key, 'active_end', now, field, value, 'status', status)
    end
  end
  if flat then out[#out + 1] = table.concat(flat, '\0') end
end
out[1] = table.concat(codes)
for _, a in ipairs(order) do
  if #a.unpark > 0 then redis.call('SREM', a.parked, unpack(a.unpark)) end
  if #a.leave > 0 then redis.call('ZREM', a.jobs, unpack(a.leave)) end
  if #a.completed > 0 then
    redis.call('ZADD', a.history, unpack(a.completed))
    if retention > 0 then redis.call('ZREMRANGEBYSCORE', a.history, '-inf', '(' .. oldest) end
  end
end
if #done > 0 then redis.call('PUBLISH', base .. 'done', table.concat(done, ' ')) end
return out
`)

// scriptCall is one call of a script, run alone or in a pipeline with others.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runScripts runs calls in one round trip and returns each one's answer or error. A script
// is sent whole (EVAL, which also caches it in the server) until the server has answered it
// once, then by its SHA-1 alone; a server that lost it (a restart, a SCRIPT FLUSH, another
// cluster node) answers NOSCRIPT, and the call is sent whole again.
func (s *Store) runScripts(ctx context.Context, calls []scriptCall) ([]any, []error) {
	out, errs := make([]any, len(calls)), make([]error, len(calls))
	cmds := make([]*redis.Cmd, len(calls))
	send := func(c redis.Cmdable, i int) {
		call := calls[i]
		if _, ok := s.scripts.Load(call.script); ok {
			cmds[i] = call.script.EvalSha(ctx, c, call.keys, call.args...)
		} else {
			cmds[i] = call.script.Eval(ctx, c, call.keys, call.args...)
		}
	}
	_ = s.use(func(c redis.Cmdable) error {
		if len(calls) == 1 {
			send(c, 0)
			return cmds[0].Err()
		}
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range calls {
				send(p, i)
			}
			return nil
		})
		return err // each command carries its own error as well
	})
	for i, cmd := range cmds {
		out[i], errs[i] = cmd.Result()
		if errs[i] != nil && strings.HasPrefix(errs[i].Error(), "NOSCRIPT") {
			s.scripts.Delete(calls[i].script)
			send(s.rdb, i)
			out[i], errs[i] = cmds[i].Result()
		}
		if errs[i] == nil {
			s.scripts.Store(calls[i].script, true)
		}
	}
	return out, errs
}

// runScript runs one call.
func (s *Store) runScript(ctx context.Context, call scriptCall) (any, error) {
	out, errs := s.runScripts(ctx, []scriptCall{call})
	return out[0], errs[0]
}

// newClaim checks p and prepares its claim.
func (s *Store) newClaim(p persistence.ClaimParams) (*claim, error) {
	const op = "claim"
	if err := validQueue(op, p.Queue); err != nil {
		return nil, err
	}
	o := persistence.Owner{Dispatcher: p.Dispatcher, Agent: p.Agent}
	if err := persistence.ValidateUUID(o.Dispatcher); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := persistence.ValidateName("agent", o.Agent); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if p.Size < 0 || p.Max < 0 || p.ScanLimit < 0 {
		return nil, fmt.Errorf("%s: %w: negative size, max or scan limit", op, persistence.ErrInvalid)
	}
	scanLimit := p.ScanLimit
	if scanLimit == 0 {
		scanLimit = persistence.DefaultScanLimit
	}
	c := &claim{s: s, p: p, o: o, q: p.Queue, scanLimit: scanLimit}
	// Without a filter the head of the queue is what is claimed: read a little more than the
	// agent's size, widening when quotas or racing claimers take candidates away. With a
	// filter, read up to the scan limit at once.
	c.window = min(scanLimit, p.Size+4)
	if p.Filter != nil {
		c.window = scanLimit
	}
	return c, nil
}

// scripted reports whether the claim may go through claimScript first: a filter is Go code.
func (c *claim) scripted() bool { return c.p.Filter == nil && !c.s.noScripts }

// call is the claim as a call of claimScript at now.
func (c *claim) call(now time.Time) scriptCall {
	s, q, o := c.s, c.q, c.o
	start := "0"
	if c.p.Start {
		start = "1"
	}
	return scriptCall{script: claimScript,
		keys: []string{s.k.dispatchers(q), s.k.ping(q, o.Dispatcher), s.k.agent(q, o), s.k.parked(q, o),
			s.k.putback(q), s.k.pending(q), s.k.agents(q)},
		args: []any{s.k.job(q, ""), o.Dispatcher, o.String(), c.p.Size, c.p.Max, c.scanLimit,
			micros(now), s.dueUntil(now), start}}
}

// answer reads claimScript's answer to call(now): the jobs claimed, or ok false when the
// script fell back, having written nothing.
func (c *claim) answer(now time.Time, r any, err error) (jobs []*persistence.Job, ok bool, _ error) {
	if err != nil {
		return nil, false, c.s.fail("claim", err)
	}
	res, _ := r.([]any)
	if len(res) == 3 && res[0] == "full" {
		held, _ := res[1].(int64)
		parked, _ := res[2].(int64)
		return nil, false, fmt.Errorf("claim: %w: agent %s holds %d jobs (%d parked), size %d", persistence.ErrFull, c.o, held, parked, c.p.Size)
	}
	if len(res) == 0 || res[0] != "ok" {
		return nil, false, nil
	}
	if len(res)%2 != 1 {
		return nil, false, fmt.Errorf("claim: %w: the script answered %d values", persistence.ErrCorrupt, len(res))
	}
	jobs = make([]*persistence.Job, 0, len(res)/2)
	for i := 1; i < len(res); i += 2 {
		id, _ := res[i].(string)
		// A record read in part is claimed all the same: its claimer fails it.
		j, err := decodeFlat(persistence.Ref{Queue: c.q, ID: id}, res[i+1])
		if err != nil && j == nil {
			return nil, false, fmt.Errorf("claim: %w", err)
		}
		take(j, c.o, now, c.p.Start) // as the script did
		jobs = append(jobs, j)
	}
	return jobs, true, nil
}

// decodeFlat decodes a job hash a script answered as its fields and values joined by NUL
// bytes: ErrNotFound when it is empty. A hash read in part gives the job with its
// *persistence.CorruptError, as decodeJob does.
func decodeFlat(ref persistence.Ref, r any) (*persistence.Job, error) {
	joined, ok := r.(string)
	if !ok {
		return nil, fmt.Errorf("%w: a script answered %T for job %s", persistence.ErrCorrupt, r, ref)
	}
	var kv []string
	if joined != "" {
		kv = strings.Split(joined, "\x00")
	}
	j, ok, err := decodePairs(ref, kv)
	if err != nil {
		return j, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: job %s", persistence.ErrNotFound, ref)
	}
	return j, nil
}

// validCommits checks a batch of commits of one queue.
func validCommits(commits []persistence.Commit) error {
	for _, c := range commits {
		if err := c.Outcome.Validate(); err != nil {
			return fmt.Errorf("commit %s: %w", c.Fence.Ref, err)
		}
		if err := validRef("commit", c.Fence.Ref); err != nil {
			return err
		}
		if c.Fence.Queue != commits[0].Fence.Queue {
			return fmt.Errorf("commit: %w: a batch spans queues %s and %s", persistence.ErrInvalid, commits[0].Fence.Queue, c.Fence.Queue)
		}
	}
	return nil
}

// commitCall is commits, of one queue, as a call of commitScript at now.
func (s *Store) commitCall(commits []persistence.Commit, now time.Time) scriptCall {
	q := commits[0].Fence.Queue
	keys := make([]string, len(commits))
	args := make([]any, 0, 5+4*len(commits))
	retention, oldest, expireAt := int64(0), int64(0), ""
	if s.retention > 0 {
		retention, oldest = s.retention.Milliseconds(), micros(now.Add(-s.retention))
		if s.clock == nil { // now is the server's clock
			expireAt = strconv.FormatInt(now.Add(s.retention).UnixMilli(), 10)
		}
	}
	args = append(args, s.k.base(q), micros(now), retention, oldest, expireAt)
	// The runs of a batch mostly share an owner (and holder): render it once, as one value.
	var lastOwner persistence.Owner
	var lastText any
	owner := func(o persistence.Owner) any {
		if lastText == nil || o != lastOwner {
			lastOwner, lastText = o, o.String()
		}
		return lastText
	}
	var flags [6]byte
	for i, c := range commits {
		keys[i] = s.k.job(q, c.Fence.ID)
		flags = [6]byte{'-', '-', 'r', '-', '0', '0'}
		if c.Outcome.Complete {
			flags[0] = 'c'
		}
		outcome := string(c.Outcome.Result)
		if c.Outcome.Failure != nil {
			flags[2], outcome = 'f', mustJSON(c.Outcome.Failure)
		}
		var extra []any
		lean := knownLean(c)
		// Counters to clear are left alone when the known job has none: only its run writes
		// them while its fence holds.
		switch {
		case len(c.Outcome.Retry) > 0:
			flags[3] = 's'
			extra = append(extra, mustJSON(c.Outcome.Retry))
		case c.Outcome.Retry != nil && (!lean || len(c.Known.Retry) > 0):
			flags[3] = '0'
		}
		if lean {
			flags[1] = 'l'
			switch k := c.Known; {
			case k.Holder == c.Fence.Owner:
				flags[4] = 'o'
			case !k.Holder.IsZero():
				flags[4] = 'h'
				extra = append(extra, owner(k.Holder))
			}
			if len(c.Known.QuotaNames) > 0 {
				flags[5] = 'q'
				extra = append(extra, mustJSON(c.Known.QuotaNames))
			}
		}
		var f any = commonFlagsValue
		if flags != commonFlags {
			f = string(flags[:])
		}
		args = append(args, owner(c.Fence.Owner), strconv.FormatInt(c.Fence.Attempt, 10), f, outcome)
		args = append(args, extra...)
	}
	return scriptCall{script: commitScript, keys: keys, args: args}
}

// The flags of most runs: completed with a result by the run that knows its job, which its
// owner holds, with no counters and no quotas. Sent as one value made once.
var (
	commonFlags          = [6]byte{'c', 'l', 'r', '-', 'o', '0'}
	commonFlagsValue any = string(commonFlags[:])
)

// knownLean reports whether c's job may be read lean by commitScript: the caller knows it,
// as the run the fence names, and it has nothing of an earlier run or of a wait to clean (a
// result, a failure, an inner job it waits for, a parked slot), which only a fenced write of
// that same run could have changed.
func knownLean(c persistence.Commit) bool {
	k := c.Known
	return k != nil && k.Ref == c.Fence.Ref && k.Owner == c.Fence.Owner && k.Attempt == c.Fence.Attempt &&
		k.Status == persistence.StatusActive && k.Result == nil && k.Failure == nil && k.WaitingOn == "" && !k.Parked
}

// commitAnswer reads commitScript's answer to commitCall(commits, now). For a run the script
// left alone, errs[i] is the error the transaction would give (ErrNotFound, ErrReassigned,
// *BadStatusError, ErrCorrupt), or, when there is none, again[i] is true: the run is to be
// committed through the transaction.
func (s *Store) commitAnswer(ctx context.Context, commits []persistence.Commit, now time.Time, r any, err error) (jobs []*persistence.Job, errs []error, again []bool, _ error) {
	const op = "commit"
	if err != nil {
		return nil, nil, nil, s.fail(op, err)
	}
	res, _ := r.([]any)
	var codes string
	if len(res) > 0 {
		codes, _ = res[0].(string)
	}
	if len(codes) != len(commits) {
		return nil, nil, nil, fmt.Errorf("%s: %w: the script answered %d codes for %d runs", op, persistence.ErrCorrupt, len(codes), len(commits))
	}
	jobs, errs, again = make([]*persistence.Job, len(commits)), make([]error, len(commits)), make([]bool, len(commits))
	next := 1 // the next job in res
	for i, c := range commits {
		f := c.Fence
		code := codes[i]
		if code == 'o' && knownLean(c) {
			// The script read the job lean: build the committed job from the caller's.
			j := *c.Known
			_, err := s.commit(ctx, now, &j, c.Outcome)
			jobs[i], errs[i] = &j, wrapOp(op, err)
			continue
		}
		if (code != 'O' && code != 'c') || next >= len(res) {
			return nil, nil, nil, fmt.Errorf("%s: %w: the script answered %q for run %d of %d", op, persistence.ErrCorrupt, codes, i, len(commits))
		}
		j, err := decodeFlat(f.Ref, res[next])
		next++
		if err != nil && j != nil && fenceRead(j) {
			err = nil // read in part: the run that holds it goes on (persistence.Job.Corrupt)
		}
		if code == 'O' {
			if err == nil {
				// The script wrote what the transaction would have: change j the same way.
				_, err = s.commit(ctx, now, j, c.Outcome)
			}
			jobs[i], errs[i] = j, wrapOp(op, err)
			continue
		}
		// "c": say why, as the transaction would.
		if err == nil {
			err = checkRun(op, f, j, active)
		}
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", op, err)
		} else {
			again[i] = true
		}
	}
	return jobs, errs, again, nil
}

// commitRest commits through the transaction the runs the script left to it (none, unless a
// record is one the script does not read the way Go does), as one batch.
func (s *Store) commitRest(ctx context.Context, commits []persistence.Commit, jobs []*persistence.Job, errs []error, again []bool) error {
	var rest []persistence.Commit
	var at []int
	for i, a := range again {
		if a {
			rest, at = append(rest, commits[i]), append(at, i)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	more, moreErrs, err := s.commitWatched(ctx, rest)
	if err != nil {
		return err
	}
	for k, i := range at {
		jobs[i], errs[i] = more[k], moreErrs[k]
	}
	return nil
}

// Batch commits runs and then claims for agents, in one round trip when every commit and
// claim is the common case the scripts take: commits[i] gets jobs[i] and errs[i], as from
// CommitMany (the commits may span queues), and claims[k] gets claimed[k] and claimErrs[k],
// as from Claim, after all the commits. It is how a node that commits and claims all the
// time does both with one round trip per batch.
func (s *Store) Batch(ctx context.Context, commits []persistence.Commit, claims []persistence.ClaimParams) (jobs []*persistence.Job, errs []error, claimed [][]*persistence.Job, claimErrs []error) {
	jobs, errs = make([]*persistence.Job, len(commits)), make([]error, len(commits))
	claimed, claimErrs = make([][]*persistence.Job, len(claims)), make([]error, len(claims))
	// The commits by queue, in their order; an invalid one fails alone.
	var queues []string
	byQueue := map[string][]int{}
	for i, c := range commits {
		if err := validCommits(commits[i : i+1]); err != nil {
			errs[i] = err
			continue
		}
		q := c.Fence.Queue
		if _, ok := byQueue[q]; !ok {
			queues = append(queues, q)
		}
		byQueue[q] = append(byQueue[q], i)
	}
	cl := make([]*claim, len(claims))
	for k, p := range claims {
		cl[k], claimErrs[k] = s.newClaim(p)
	}
	now, err := s.now(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = firstErr(errs[i], err)
		}
		for k := range claimErrs {
			claimErrs[k] = firstErr(claimErrs[k], err)
		}
		return jobs, errs, claimed, claimErrs
	}
	var calls []scriptCall
	groups := make([][]persistence.Commit, len(queues)) // the commits of each queue, in order
	for n, q := range queues {
		if len(byQueue[q]) == len(commits) {
			groups[n] = commits // all of them (the common case): no copy
			continue
		}
		groups[n] = make([]persistence.Commit, len(byQueue[q]))
		for m, i := range byQueue[q] {
			groups[n][m] = commits[i]
		}
	}
	if !s.noScripts {
		for _, g := range groups {
			calls = append(calls, s.commitCall(g, now))
		}
	}
	scriptedAt := make([]int, len(claims)) // index of the claim's call, or -1
	for k, c := range cl {
		scriptedAt[k] = -1
		if c != nil && c.scripted() {
			scriptedAt[k] = len(calls)
			calls = append(calls, c.call(now))
		}
	}
	var res []any
	var resErrs []error
	if len(calls) > 0 {
		res, resErrs = s.runScripts(ctx, calls)
	}
	for n, q := range queues {
		g := groups[n]
		var gj []*persistence.Job
		var ge []error
		var err error
		if s.noScripts {
			gj, ge, err = s.commitWatched(ctx, g)
		} else {
			var again []bool
			gj, ge, again, err = s.commitAnswer(ctx, g, now, res[n], resErrs[n])
			if err == nil {
				err = s.commitRest(ctx, g, gj, ge, again)
			}
		}
		for m, i := range byQueue[q] {
			if err != nil {
				errs[i] = err
				continue
			}
			jobs[i], errs[i] = gj[m], ge[m]
		}
	}
	for k, c := range cl {
		if c == nil {
			continue
		}
		if at := scriptedAt[k]; at >= 0 {
			js, ok, err := c.answer(now, res[at], resErrs[at])
			if err != nil || ok {
				claimed[k], claimErrs[k] = js, err
				continue
			}
		}
		claimed[k], claimErrs[k] = c.transaction(ctx)
	}
	return jobs, errs, claimed, claimErrs
}

// firstErr keeps err when it is set, else takes other.
func firstErr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// wrapOp wraps a non-nil err with op.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
