package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// Every key a script touches is declared in KEYS, none is built inside the script: Redis
// Cluster checks only the declared keys when it routes a script, so a key built inside one
// could be written on a node that has already handed its slot over to another (a slot
// migration then aborts, "Target key exists"), or fail the script half-way ("Script
// attempted to access a non local key"), its first writes done. With every key declared, a
// script that meets a migrating slot is refused whole (ASK, TRYAGAIN) and the store answers
// persistence.ErrUnavailable; keysDeclaredTest guards the rule. A script also touches no key
// again after a write that may have deleted it (emptied it): during a migration the node
// would then send that key's command elsewhere, half-way.

// claimScript claims up to an agent's free slots from the head of a queue, when the claim
// needs no filter: put-back jobs first, then due jobs by priority, the highest first, and by
// position within a priority.
//
// The jobs a claim may take are only known by reading the queue, in the script, but their
// keys must be declared before it runs: the caller declares the ids it expects at the head
// (the head as the previous claim of the queue answered it), and the script takes only
// declared jobs, in queue order. When it meets an id that was not declared while it still
// has free slots, it stops there and answers so, with the head it saw, for the caller to
// claim again at once with those ids declared: a queue claimed by one node costs one round
// trip a claim, as before.
//
// KEYS[1] dispatchers hash, KEYS[2] the dispatcher's ping, KEYS[3] the agent's zset,
// KEYS[4] its parked set, KEYS[5] putback list, KEYS[6] pending zset, KEYS[7] agents set,
// KEYS[8…] the pending zsets of the priorities the caller declares (ARGV[12]), then the job
// keys of the declared ids. ARGV[1] dispatcher UUID, ARGV[2] owner
// "uuid/agent", ARGV[3] size, ARGV[4] max (0: none), ARGV[5] scan limit, ARGV[6] now µs,
// ARGV[7] highest due position µs, ARGV[8] "1" to start the jobs, ARGV[9] how many jobs of
// the head to answer, ARGV[10] the queue's job key prefix (a job key is it and the id),
// ARGV[11] how many of the declared job keys, the first ones, the caller reads the call field
// of right after the script, in the same pipeline (see claim.call), ARGV[12] the priorities
// whose zsets are declared, a digit each, the highest first (those the last claim answered
// in use: see priorities.go).
//
// It returns {"levels", priorities} and writes nothing when a priority is in use whose zset
// is not declared, for the caller to declare them all (a digit each), {"paused"} and writes nothing when the queue is paused (the dispatchers hash
// has its pausedField), {"fallback"} and writes nothing when the claim is not the common case: the
// dispatcher has no activated, alive record, or a candidate names quotas, has a begin_by
// deadline that passed, or has a status or attempt it cannot read; {"full", held, parked}
// when the agent has no free slot (held jobs, parked ones among them). Otherwise it drops
// the queue entries of jobs that are gone or no longer pending (a claim after a crash),
// claims, and returns {"ok", more, head, priorities, id, hash, call, id, …}: more is "1" when
// it stopped at an id that was not declared with slots still free; head is the keys of the
// jobs at the head of the queue after those it examined (put-back ones first, then due ones),
// separated by spaces, for the next claim to declare; priorities those in use after the
// claim, as for "levels" (it drops those whose zsets it found or left empty); then each claimed job as it was before the
// claim, for the caller to change as the claim did: its id, its hash but for the call field,
// and that field ("" when there is none, or when the caller reads it itself). A hash is its
// fields and values joined by NUL bytes, which no field holds (names are restricted, JSON
// escapes control characters). A claimed job whose other fields cannot be read (a record
// corrupted by hand) is claimed all the same and handed out with its Corrupt set, for its
// claimer to fail it.
var claimScript = redis.NewScript(scriptGlobals + claimBody)

// claimBody is claimScript's text after the globals.
const claimBody = `
local uuid, owner = ARGV[1], ARGV[2]
local size, maxn, scan = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now, due, start, headn = tonumber(ARGV[6]), ARGV[7], ARGV[8] == '1', tonumber(ARGV[9])
-- Priorities (priorities.go): KEYS[8…] the zsets of those the caller declares, ARGV[12]
-- (one digit each), the highest first; the job keys after them.
local declaredLevels = ARGV[12]
local first = 8 + #declaredLevels -- KEYS[first]: the first job key
local apart = first + tonumber(ARGV[11]) -- KEYS[first…apart-1]: the caller reads their calls after this
local fallback = {'fallback'}
-- Every field of a job record but its call (the codec's, in Go: a test keeps them the same).
local fields = {'status', 'owner', 'attempt', 'holder', 'begin_after', 'begin_by', 'quotas', 'policy',
  'retry', 'log_level', 'result', 'failure', 'callbacks', 'choice', 'parent', 'target', 'waiting_on',
  'parked', 'assigner', 'created', 'active_start', 'active_end', 'completed', 'children', 'sealed',
  'composite', 'annotated', 'attempts', 'timeout', 'priority', 'unique'}

-- The record is JSON written by Go (encoding/json, no spaces); only two numbers are needed.
-- The queue's pause mark is a field of the same hash, read in the same command, and so is
-- the mark that some priority other than the default is in use (priorities.go).
local rec = redis.call('HMGET', KEYS[1], uuid, '!paused', '!p')
if rec[2] then return {'paused'} end
local raw = rec[1]
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

-- The pending zsets in claim order: those of the priorities in use above the default, the
-- queue's pending zset (the default's), those below. A priority in use that the caller did
-- not declare makes the script answer those in use, for the caller to declare them.
-- A queue without priorities (none in use) has its pending zset alone, and the claim does
-- what it did before priorities: single, which spares it every step below that walks the
-- zsets (a few thousand Lua steps a claim).
local inUse, used = {}, {}
local defaultSrc = {key = 6}
local srcs = {defaultSrc} -- each: its key's index, its level (nil: the default), then as it is read
local marked = rec[3]
if marked then
  local marks = redis.call('HMGET', KEYS[1], '!p9', '!p8', '!p7', '!p6', '!p4', '!p3', '!p2', '!p1')
  local undeclared, names = false, {'9', '8', '7', '6', '4', '3', '2', '1'}
  for i = 1, 8 do
    local l = names[i]
    if marks[i] then
      inUse[#inUse + 1], used[l] = l, true
      if not string.find(declaredLevels, l, 1, true) then undeclared = true end
    end
  end
  if undeclared then return {'levels', table.concat(inUse, '')} end
  srcs = {}
  for i = 1, #declaredLevels do
    local l = string.sub(declaredLevels, i, i)
    if tonumber(l) < 5 and not defaultSrc.at then -- 5: persistence.DefaultPriority
      srcs[#srcs + 1], defaultSrc.at = defaultSrc, true
    end
    if used[l] then srcs[#srcs + 1] = {key = 7 + i, level = l} end
  end
  if not defaultSrc.at then srcs[#srcs + 1] = defaultSrc end
end
local single = #srcs == 1

-- keyAt returns the index in KEYS of the job key of id, or nil when it is not declared. The
-- caller declares the head in queue order, so the next key in KEYS is tried first, compared
-- in place (a Lua string made per key costs about as much as a field read); the others are
-- indexed by id the first time that fails. (Every declared job key starts with the prefix:
-- the caller declares no other.)
local jobPrefix = ARGV[10]
local plen = #jobPrefix
local nextKey, declared = first, nil
local function keyAt(id)
  local k = KEYS[nextKey]
  if k and #k == plen + #id and string.find(k, id, plen + 1, true) == plen + 1 then
    nextKey = nextKey + 1
    return nextKey - 1
  end
  if not declared then
    declared = {}
    for i = first, #KEYS do declared[string.sub(KEYS[i], plen + 1)] = i end
  end
  return declared[id]
end

-- The head of the queue: put-back ids, then due ids in position order, read in windows a
-- little larger than what this claim and the next one need, as the walk below goes. Every
-- read comes before every write.
local window = math.min(scan, free + headn)
local head = {} -- the put-back ids read come first: head[1…pbRead]
local pbRead, pbEnd, srcAt = 0, false, 1
local function readMore()
  if not pbEnd then
    local got = redis.call('LRANGE', KEYS[5], pbRead, pbRead + window - 1)
    for _, id in ipairs(got) do head[#head + 1] = id end
    pbRead = pbRead + #got
    pbEnd = #got < window
    if #got > 0 then return true end
  end
  while srcs[srcAt] do
    local src = srcs[srcAt]
    if not src.read then
      src.read, src.first = 0, #head + 1 -- its entries are head[src.first…]
      if src.level then src.card = redis.call('ZCARD', KEYS[src.key]) end
    end
    local got = redis.call('ZRANGEBYSCORE', KEYS[src.key], '-inf', due, 'LIMIT', src.read, window)
    if #head == 0 then
      head = got -- the common case: no put-back entry, one window
    else
      for _, id in ipairs(got) do head[#head + 1] = id end
    end
    src.read = src.read + #got
    if #got < window then srcAt = srcAt + 1 end
    if #got > 0 then return true end
  end
  return false
end

-- srcOf returns the pending zset head[n] was read from (nil for a put-back entry). Each
-- zset's entries follow the last one's in head, and the walk asks in the order of n.
local cur = 0
local function srcOf(n)
  local nxt = srcs[cur + 1]
  while nxt and nxt.first and nxt.first <= n do
    cur = cur + 1
    nxt = srcs[cur + 1]
  end
  return srcs[cur]
end

local known = {new=true, assigned=true, active=true, callbacks=true, completed=true}
-- The jobs taken: ids, hashes as read, next attempts; stale entries; the key index of each
-- id examined (true for a stale one); how many put-back entries were examined (they all
-- leave the list, as its first entries).
local ids, flats, calls, attempts, stale, seen = {}, {}, {}, {}, {}, {}
local from, takenFrom = {}, {} -- the pending zset of each stale entry, of each job taken
local examined, pbUsed, more, n = 0, 0, false, 1
while #ids < free and examined < scan do
  if n > #head and not readMore() then break end
  local id = head[n]
  if not seen[id] then
    local at = keyAt(id)
    if not at then more = true; break end
    seen[id] = true
    examined = examined + 1
    local flat
    if at < apart then
      -- Its call is read by the caller, in the same round trip: a call that went through
      -- Lua would be hashed, every byte of it, as Lua makes each string (a 10 KB call cost
      -- a quarter of the server's time in a drain).
      local values = redis.call('HMGET', KEYS[at], unpack(fields))
      flat = {}
      for i = 1, #fields do
        if values[i] then
          flat[#flat + 1] = fields[i]
          flat[#flat + 1] = values[i]
        end
      end
    else
      flat = redis.call('HGETALL', KEYS[at])
    end
    local st, quotas, by, after, created, attempt, callAt
    for i = 1, #flat, 2 do
      local f = flat[i]
      if f == 'status' then st = flat[i + 1]
      elseif f == 'call' then callAt = i
      elseif f == 'quotas' then quotas = true
      elseif f == 'begin_by' then by = flat[i + 1]
      elseif f == 'begin_after' then after = flat[i + 1]
      elseif f == 'created' then created = flat[i + 1]
      elseif f == 'attempt' then attempt = flat[i + 1]
      end
    end
    if st ~= 'pending' then
      if not known[st] and #flat > 0 then return fallback end
      stale[#stale + 1] = id
      if not single then from[#stale] = srcOf(n) end
    else
      if quotas then return fallback end
      if by then
        by, after = tonumber(by), tonumber(after or created or '0') -- no begin_after: created
        if not by or not after or after + by < now then return fallback end
      end
      attempt = tonumber(attempt or '0')
      if not attempt then return fallback end
      local k = #ids + 1
      -- The call is answered apart, as it was read: joining it with the other fields would
      -- copy it, and Redis's Lua hashes every byte of each string it makes, so a large
      -- call would be hashed again, more than once.
      local call = ''
      if callAt then
        call = flat[callAt + 1]
        table.remove(flat, callAt + 1)
        table.remove(flat, callAt)
      end
      ids[k], flats[k], calls[k], attempts[k] = id, flat, call, tostring(attempt + 1)
      if not single then takenFrom[k] = srcOf(n) end
      seen[id] = at
    end
  end
  if n <= pbRead then pbUsed = n end
  n = n + 1
end

-- The head after what was examined, for the next claim to declare: its ids made keys by one
-- concatenation of them all, not one string per key. Without put-back entries the head is
-- the zset's entries, each once, none after n examined: the rest is a slice of it.
local rest, sep = '', ' ' .. jobPrefix
if pbEnd and pbRead == 0 then
  while #head < n + headn - 1 and readMore() do end
  local last = math.min(#head, n + headn - 1)
  if last >= n then rest = jobPrefix .. table.concat(head, sep, n, last) end
else
  local restIds, inRest = {}, {}
  while #restIds < headn do
    if n > #head and not readMore() then break end
    local id = head[n]
    if not seen[id] and not inRest[id] then
      inRest[id] = true
      restIds[#restIds + 1] = id
    end
    n = n + 1
  end
  if #restIds > 0 then rest = jobPrefix .. table.concat(restIds, sep) end
end

-- The writes, one command per key (the records one by one), after every read: no key is
-- touched again after a write that may have emptied it.
if pbUsed > 0 then redis.call('LTRIM', KEYS[5], pbUsed, -1) end
local scored = {}
-- gone: the entries each pending zset loses (a put-back entry's zset is the default's, as it
-- always was: its job is in none); one list when the default's is the only one.
local gone = {}
local function leave(src, id)
  src = src or defaultSrc
  if not src.gone then src.gone = {} end
  src.gone[#src.gone + 1] = id
end
for k, id in ipairs(stale) do
  if single then gone[#gone + 1] = id else leave(from[k], id) end
end
local out = {'ok', more and '1' or '0', rest, ''}
for n, id in ipairs(ids) do
  if single then gone[#gone + 1] = id else leave(takenFrom[n], id) end
  if start then
    redis.call('HSET', KEYS[seen[id]], 'status', 'active', 'owner', owner, 'holder', owner, 'attempt', attempts[n], 'active_start', ARGV[6])
  else
    redis.call('HSET', KEYS[seen[id]], 'status', 'assigned', 'owner', owner, 'holder', owner, 'attempt', attempts[n])
  end
  scored[#scored + 1] = ARGV[6]
  scored[#scored + 1] = id
  out[#out + 1] = id
  out[#out + 1] = table.concat(flats[n], '\0')
  out[#out + 1] = calls[n]
end
if single then
  if #gone > 0 then redis.call('ZREM', KEYS[6], unpack(gone)) end
  if marked then redis.call('HDEL', KEYS[1], '!p') end -- marked with no priority marked
else
  local unmark = {}
  for _, src in ipairs(srcs) do
    if src.gone then redis.call('ZREM', KEYS[src.key], unpack(src.gone)) end
    -- A priority whose zset this empties, or found empty, is no longer in use.
    if src.card and src.card == (src.gone and #src.gone or 0) then
      unmark[#unmark + 1] = '!p' .. src.level
      used[src.level] = nil
    end
  end
  -- The priorities in use after the claim, for the caller's next claim to declare.
  local left = {}
  for _, l in ipairs(inUse) do
    if used[l] then left[#left + 1] = l end
  end
  out[4] = table.concat(left, '')
  if #left == 0 then unmark[#unmark + 1] = '!p' end
  if #unmark > 0 then redis.call('HDEL', KEYS[1], unpack(unmark)) end
end
if #ids > 0 then
  redis.call('ZADD', KEYS[3], unpack(scored))
  -- An agent that holds jobs is listed already: only claims add jobs to it, and they list it.
  if held == 0 then redis.call('SADD', KEYS[7], owner) end
end
return out
`

// commitScript commits several runs of one queue: for each run whose record is readable, in
// ACTIVE, with the fence's owner and attempt, the outcome is stored as Store.commit does.
//
// KEYS[i] the job key of run i (n runs); then, for each agent the caller expects the runs to
// be held or owned by, its jobs, parked set and completed history; then, for each quota name
// the caller expects, its set; then the annotations' keys of the runs whose flags say so, in
// the runs' order; last, the queue's index of failures (keys.failed), which a job completed
// with a failure joins. ARGV[1] the queue's key prefix, ARGV[2] now µs, ARGV[3] retention ms (0:
// keep forever), ARGV[4] the oldest completion kept in histories, µs (0: this call leaves
// them untrimmed), ARGV[5] when a record completed now expires, Unix ms by the server's clock
// ("" when the caller does not know that clock: the script reads it), ARGV[6] the queue's
// done channel, ARGV[7] n, ARGV[8] how many agents, and each agent ("uuid/agent"), then how
// many quota names, and each name; then, for each run, its owner, its attempt, its flags, its
// outcome (the result, or the failure JSON), and the extra values its flags announce, in this
// order. The flags are seven letters (one value, not seven: each
// value a script is given costs about as much as reading a field):
//
//  1. "c" to complete the job when it has no callbacks, else "-";
//  2. "l" when the caller knows the job (Commit.Known: see knownLean), else "-";
//  3. "r" when the outcome is a result, "f" a failure;
//  4. the retry counters: "-" to keep them, "0" to clear them, "s" to set them (extra value:
//     their JSON);
//  5. a known job's holder: "o" its owner, "0" none, "h" another (extra value: the holder);
//  6. a known job's quota names: "0" none, "q" some (extra value: their JSON);
//  7. "a" when the job's annotations key is declared, else "-": a job annotated through
//     this store. A job found annotated whose key is not declared is left to the
//     transaction when its completion must expire its annotations.
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
// does not hold, or it is held by an agent or names a quota whose keys the caller did not
// declare, or it would complete a job that holds a unique key (which the transaction
// releases, unique.go), and the caller says why or commits it through the transaction. (One string, not
// two values per run: every value a script returns costs Redis and the client alike.) A job
// is its fields and values joined by NUL bytes, as the claim answers it. (A run whose other
// fields cannot be read, a record corrupted by hand, is committed all the same and answered
// with its Corrupt set.)
var commitScript = redis.NewScript(scriptGlobals + commitBody)

// commitBody is commitScript's text after the globals.
const commitBody = `
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
local channel, n, m = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
-- The declared agents and quotas. Writes to them (an agent's jobs, parked set and history,
-- a quota's holders) go in one command per key after the loop, so that no key is touched
-- again after a write that may have emptied it; the records one by one.
local agents, order, done = {}, {}, {}
for k = 1, m do
  agents[ARGV[8 + k]] = {at = n + 3 * (k - 1), unpark = {}, leave = {}, completed = {}}
end
local a = 9 + m
local quotas = {}
local qn = tonumber(ARGV[a])
for k = 1, qn do
  quotas[ARGV[a + k]] = {at = n + 3 * m + k, ids = {}}
end
a = a + qn + 1 -- the first run's first value
local annAt = n + 3 * m + qn -- the last annotations key taken
local function use(x)
  if not x.used then
    x.used = true
    order[#order + 1] = x
  end
  return x
end
local codes, out, failed = {}, {''}, {}
local C, L, F, ZERO, S, O, H, Q, A = string.byte('clf0sohqa', 1, 9) -- the flags' letters
for i = 1, n do
  local owner, attempt, flags, outcome = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  a = a + 4
  local fc, fl, fo, fr, fh, fq, fa = string.byte(flags, 1, 7)
  local ann
  if fa == A then
    annAt = annAt + 1
    ann = annAt
  end
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
  local st, ow, at, holder, quotaNames, callbacks, hasResult, hasFailure, hasRetry, waiting, parked, annotated
  local uniq -- a unique key to release: its completion is left to the transaction (unique.go)
  if lean then
    local v = redis.call('HMGET', KEYS[i], 'status', 'owner', 'attempt', 'callbacks', 'annotated')
    st, ow, at, callbacks, annotated = v[1], v[2], v[3], v[4], v[5]
    holder, quotaNames = knownHolder, knownQuotas
    hasRetry = true -- not read: counters the caller asks to clear are deleted unread
    -- The whole record is read when the commit is not the common one. (An if, not an
    -- assignment of 'not a and b' to a variable that exists: miniredis's Lua gets that wrong.)
    if callbacks or st ~= 'active' or ow ~= owner or at ~= attempt then lean = false end
  end
  if not lean then
    flat = redis.call('HGETALL', KEYS[i])
    st, ow, at, holder, quotaNames, callbacks = nil, nil, nil, nil, nil, nil
    hasRetry, waiting, parked, annotated = nil, nil, nil, nil
    for j = 1, #flat, 2 do
      local f = flat[j]
      if f == 'status' then st = flat[j + 1]
      elseif f == 'owner' then ow = flat[j + 1]
      elseif f == 'attempt' then at = flat[j + 1]
      elseif f == 'holder' then holder = flat[j + 1]
      elseif f == 'quotas' then quotaNames = flat[j + 1]
      elseif f == 'callbacks' then callbacks = true
      elseif f == 'result' then hasResult = true
      elseif f == 'failure' then hasFailure = true
      elseif f == 'retry' then hasRetry = true
      elseif f == 'waiting_on' then waiting = true
      elseif f == 'parked' then parked = true
      elseif f == 'annotated' then annotated = true
      elseif f == 'unique' then uniq = true
      end
    end
  end
  local ok = st == 'active' and ow == owner and at == attempt
  local names
  if ok and quotaNames then
    ok, names = pcall(cjson.decode, quotaNames)
    if type(names) ~= 'table' then ok = false end
  end
  -- The agent whose jobs and parked set hold it (its holder), the one whose history it
  -- joins (its holder, else its owner), and its quotas' sets must have been declared.
  local h, by = nil, nil
  if ok then
    if holder then h = agents[holder] end
    by = h or agents[ow]
    if (holder and not h) or not by then ok = false end
  end
  if ok and names then
    for _, q in ipairs(names) do
      if not quotas[q] then ok = false end
    end
  end
  if ok and annotated and not ann and complete and not callbacks and retention > 0 then ok = false end
  if ok and uniq and complete and not callbacks then ok = false end
  if not ok then
    codes[i] = 'c'
    flat = flat or redis.call('HGETALL', KEYS[i])
  else
    codes[i] = flat and 'O' or 'o'
    local id = string.sub(KEYS[i], #base + 5)
    if names then
      for _, q in ipairs(names) do
        local set = use(quotas[q]).ids
        set[#set + 1] = id
      end
    end
    if h and parked then use(h).unpark[#h.unpark + 1] = id end
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
      if h then use(h).leave[#h.leave + 1] = id end
      use(by)
      by.completed[#by.completed + 1] = now
      by.completed[#by.completed + 1] = id
      if retention > 0 then
        redis.call('PEXPIREAT', KEYS[i], expiry())
        if annotated then redis.call('PEXPIREAT', KEYS[ann], expiry()) end
      end
      done[#done + 1] = id
      if failure ~= '' then
        failed[#failed + 1] = now
        failed[#failed + 1] = id
      end
    end
    if del then redis.call('HDEL', KEYS[i], unpack(del)) end
    if set then
      redis.call('HSET', KEYS[i], 'active_end', now, field, value, 'status', status, set[1], set[2])
    else
      redis.call('HSET', KEYS[i], 'active_end', now, field, value, 'status', status)
    end
  end
  if flat then out[#out + 1] = table.concat(flat, '\0') end
end
out[1] = table.concat(codes)
for _, x in ipairs(order) do
  if x.ids then
    redis.call('SREM', KEYS[x.at], unpack(x.ids))
  else
    if #x.unpark > 0 then redis.call('SREM', KEYS[x.at + 2], unpack(x.unpark)) end
    if #x.leave > 0 then redis.call('ZREM', KEYS[x.at + 1], unpack(x.leave)) end
    if #x.completed > 0 then
      redis.call('ZADD', KEYS[x.at + 3], unpack(x.completed))
      if oldest ~= '0' then redis.call('ZREMRANGEBYSCORE', KEYS[x.at + 3], '-inf', '(' .. oldest) end
    end
  end
end
if #failed > 0 then
  redis.call('ZADD', KEYS[#KEYS], unpack(failed))
  if oldest ~= '0' then redis.call('ZREMRANGEBYSCORE', KEYS[#KEYS], '-inf', '(' .. oldest) end
end
if #done > 0 then redis.call('PUBLISH', channel, table.concat(done, ' ')) end
return out
`

// scriptGlobals opens every script: the globals it reads made locals once. Reading a global
// in a script goes through the sandbox's protected globals table, a noticeable part of a
// script's cost per job.
const scriptGlobals = `local KEYS, ARGV, redis, string, table, math = KEYS, ARGV, redis, string, table, math
local tonumber, tostring, ipairs, unpack, pcall, type, cjson = tonumber, tostring, ipairs, unpack, pcall, type, cjson
`

// scriptCall is one call of a script, run alone or in a pipeline with others.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	// read are job keys whose call field the pipeline reads right after the script; their
	// commands are stored in *reads.
	read  []string
	reads *[]*redis.StringCmd
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
		if call.reads != nil {
			reads := make([]*redis.StringCmd, len(call.read))
			for k, key := range call.read {
				reads[k] = c.HGet(ctx, key, fCall)
			}
			*call.reads = reads
		}
	}
	_ = s.use(func(c redis.Cmdable) error {
		if len(calls) == 1 && len(calls[0].read) == 0 {
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
			// Sent whole, with its reads after it again: those sent with the refused script
			// read before any claim.
			_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { send(p, i); return nil })
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

// maxClaimRounds bounds how many times a claim runs claimScript, each time with the ids the
// last run met at the head of the queue, before it claims through the transaction.
const maxClaimRounds = 3

// claimStep is what a run of claimScript leaves a claim to do.
type claimStep int

const (
	claimDone     claimStep = iota // claim.jobs and claim.err are the claim's outcome
	claimAgain                     // run the script again: it met ids that were not declared
	claimFallback                  // claim through the transaction, which says why not if it cannot
)

// call is the claim as a call of claimScript at now. It declares the jobs the last run met at
// the head of the queue or, on a claim's first run, the head as the last claim of the queue
// through this store answered it, and the jobs put since.
func (c *claim) call(now time.Time) scriptCall {
	s, q, o := c.s, c.q, c.o
	h := s.heads.get(q, s.k)
	if c.cands == nil {
		c.cands, c.mine = h.reserve(c.want(), c.takes())
	}
	c.rounds++
	start := "0"
	if c.p.Start {
		start = "1"
	}
	maxn := c.p.Max
	if maxn > 0 {
		maxn -= len(c.jobs) // taken by the earlier runs
	}
	ak := h.owner(o)
	ls := h.levels()
	first := 7 // the first job key's index
	levels := ""
	if ls != nil {
		first, levels = 7+len(ls.keys), ls.digits
	}
	keys := make([]string, 7, first+len(c.cands))
	keys[0], keys[1], keys[2], keys[3] = h.dispatchers, ak.ping, ak.agent, ak.parked
	keys[4], keys[5], keys[6] = h.putback, h.pending, h.agents
	if ls != nil {
		keys = append(keys, ls.keys...)
	}
	for _, k := range c.cands {
		// An entry of the queue that is not a valid id would make a key outside the queue's
		// slot: it is left undeclared, and the transaction deals with it.
		if id, ok := strings.CutPrefix(k, h.prefix); ok && persistence.ValidateName("job id", id) == nil {
			keys = append(keys, k)
		}
	}
	// In a queue whose calls are large, the calls of the jobs this claim is likely to take
	// (the first declared, as many as the agent's last claim took) are read after the script
	// rather than through it. A guess too short only leaves calls to the script; one too
	// long reads calls for nothing.
	c.callKeys = nil
	if h.largeCalls.Load() {
		n := int(ak.lastTaken.Load())
		if c.p.Max > 0 {
			n = min(n, c.p.Max-len(c.jobs))
		}
		n = max(0, min(n, c.p.Size-len(c.jobs), len(keys)-first))
		c.callKeys = keys[first : first+n]
	}
	return scriptCall{script: claimScript, keys: keys, args: []any{o.Dispatcher, ak.text, c.p.Size, maxn, c.scanLimit,
		micros(now), s.dueUntil(now), start, c.headLen(), h.prefixArg, len(c.callKeys), levels}, read: c.callKeys, reads: &c.callReads}
}

// largeCall is the length from which a call is read apart from claimScript (see
// claim.call): below it, the command that reads it costs more than Lua's hashing of it.
const largeCall = 1024

// headSpare is how many ids a claim declares past those it may take, for entries it may
// find stale (a job forgotten, a claim after a crash). Few: each id declared costs the
// script about as much as reading a field, and a stale entry is rare; a claim that meets
// more of them runs the script again with the ids it met.
const headSpare = 1

// headLen is how many ids of the head of the queue a claim asks the script for: enough for
// this agent's next claim to find declared the jobs it takes (its want).
func (c *claim) headLen() int { return min(c.scanLimit, c.p.Size+headSpare) }

// want is how many ids of the head a claim declares: those it may take, and headSpare more.
func (c *claim) want() int { return c.takes() + headSpare }

// takes is how many jobs a claim may take at most.
func (c *claim) takes() int {
	if c.p.Max > 0 {
		return c.p.Max - len(c.jobs)
	}
	return c.p.Size
}

// callRead is the index in callKeys (and callReads) of job id's call, read apart from the
// script, or -1. Every declared key is prefix and an id (see call), so ids are compared
// without making keys: most claims read no call apart, and this runs for every job claimed.
func (c *claim) callRead(prefix, id string) int {
	for k, key := range c.callKeys[:min(len(c.callKeys), len(c.callReads))] {
		if len(key) == len(prefix)+len(id) && key[len(prefix):] == id {
			return k
		}
	}
	return -1
}

// answer reads claimScript's answer to call(now). The jobs claimed by every run so far are
// the claim's, whatever a later run answers: they are held in Redis, and must be handed out.
func (c *claim) answer(now time.Time, r any, err error) claimStep {
	h := c.s.heads.get(c.q, c.s.k)
	h.release(c.mine) // the run is back: what it took is out of the queue
	c.mine = nil
	done := func(err error) claimStep {
		if len(c.jobs) > 0 {
			err = nil
		}
		c.err = err
		return claimDone
	}
	if err != nil {
		return done(c.s.fail("claim", err))
	}
	res, _ := r.([]any)
	if len(res) == 1 && res[0] == "paused" {
		return done(nil)
	}
	if len(res) == 3 && res[0] == "full" {
		held, _ := res[1].(int64)
		parked, _ := res[2].(int64)
		return done(fmt.Errorf("claim: %w: agent %s holds %d jobs (%d parked), size %d", persistence.ErrFull, c.o, held, parked, c.p.Size))
	}
	if len(res) == 2 && res[0] == "levels" {
		// Priorities in use that this claim did not declare: declare them and run again.
		digits, _ := res[1].(string)
		h.setLevels(digits)
		if c.rounds < maxClaimRounds {
			return claimAgain
		}
		if len(c.jobs) > 0 {
			return done(nil)
		}
		return claimFallback
	}
	if len(res) == 0 || res[0] != "ok" {
		if len(c.jobs) > 0 {
			return done(nil)
		}
		return claimFallback
	}
	if len(res)%3 != 1 {
		return done(fmt.Errorf("claim: %w: the script answered %d values", persistence.ErrCorrupt, len(res)))
	}
	more, _ := res[1].(string)
	rest, _ := res[2].(string)
	digits, _ := res[3].(string)
	h.setLevels(digits)
	h.saw(strings.Fields(rest), c.cands)
	// The next run, if any, declares the head as it is now.
	c.cands = nil
	large, small := 0, 0 // calls claimed of at least largeCall bytes, and shorter ones
	for i := 4; i < len(res); i += 3 {
		id, _ := res[i].(string)
		call := res[i+2]
		if k := c.callRead(h.prefix, id); k >= 0 {
			// Bytes, not a string: the reply's own buffer, which the job's arguments keep
			// without a copy.
			v, err := c.callReads[k].Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				// Claimed, but its call could not be read: it is not handed out, and stays
				// held with no run, which the agent's next reconciliation recovers, as after
				// a claim whose reply was lost.
				continue
			}
			if len(v) == 0 {
				v = nil // no call field, or an empty one: as the script answers them
			}
			call = v
		}
		n := -1
		switch text := call.(type) {
		case string:
			n = len(text)
		case []byte:
			n = len(text)
		}
		if n >= largeCall {
			large++
		} else if n >= 0 {
			small++
		}
		// A record read in part is claimed all the same: its claimer fails it.
		j, err := decodeFlatCall(persistence.Ref{Queue: c.q, ID: id}, res[i+1], call)
		if err != nil && j == nil {
			return done(fmt.Errorf("claim: %w", err))
		}
		take(j, c.o, now, c.p.Start) // as the script did
		c.jobs = append(c.jobs, j)
	}
	if large+small > 0 {
		h.largeCalls.Store(large >= small)
	}
	h.owner(c.o).lastTaken.Store(int32(len(c.jobs)))
	switch {
	case more != "1":
		return done(nil)
	case c.rounds < maxClaimRounds:
		return claimAgain
	case len(c.jobs) > 0:
		return done(nil)
	}
	return claimFallback
}

// decodeFlat decodes a job hash a script answered as its fields and values joined by NUL
// bytes: ErrNotFound when it is empty. A hash read in part gives the job with its
// *persistence.CorruptError, as decodeJob does.
func decodeFlat(ref persistence.Ref, r any) (*persistence.Job, error) {
	return decodeFlatCall(ref, r, "")
}

// decodeFlatCall is decodeFlat for a hash answered without its call field, and that field
// apart: a string as a script answers it ("" when there is none), or bytes read apart (nil
// when there is none), which the job keeps.
func decodeFlatCall(ref persistence.Ref, r, call any) (*persistence.Job, error) {
	joined, ok := r.(string)
	if !ok {
		return nil, fmt.Errorf("%w: a script answered %T for job %s", persistence.ErrCorrupt, r, ref)
	}
	var kv []string
	if joined != "" {
		kv = strings.Split(joined, "\x00")
	}
	var raw []byte
	switch c := call.(type) {
	case string:
		if c != "" {
			kv = append(kv, fCall, c)
		}
	case []byte:
		raw = c
	default:
		return nil, fmt.Errorf("%w: a script answered %T for the call of job %s", persistence.ErrCorrupt, call, ref)
	}
	j, ok, err := decodePairsCall(ref, kv, raw)
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
	n := len(commits)
	// The agents and quotas the runs are expected to touch: their owners, and the holders
	// and quota names of the jobs the callers know. A run that touches others is left to the
	// transaction by the script.
	var agents []persistence.Owner
	var quotas []string
	for _, c := range commits {
		if !slices.Contains(agents, c.Fence.Owner) {
			agents = append(agents, c.Fence.Owner)
		}
		if k := c.Known; k != nil && k.Ref == c.Fence.Ref {
			if !k.Holder.IsZero() && !slices.Contains(agents, k.Holder) {
				agents = append(agents, k.Holder)
			}
			for _, name := range k.QuotaNames {
				if persistence.ValidateName("quota", name) == nil && !slices.Contains(quotas, name) {
					quotas = append(quotas, name)
				}
			}
		}
	}
	keys := make([]string, n, n+3*len(agents)+len(quotas)+1) // +1: the index of failures, last
	args := make([]any, 0, 9+len(agents)+len(quotas)+4*n)
	retention, oldest, expireAt := int64(0), int64(0), ""
	if s.retention > 0 {
		retention, oldest = s.retention.Milliseconds(), micros(now.Add(-s.retention))
		if s.clock == nil { // now is the server's clock
			expireAt = strconv.FormatInt(now.Add(s.retention).UnixMilli(), 10)
		}
	}
	h := s.heads.get(q, s.k)
	if oldest != 0 && !h.trimDue(agents, now) {
		oldest = 0
	}
	args = append(args, h.base, micros(now), retention, oldest, expireAt, h.done, n, len(agents))
	// The runs of a batch mostly share an owner (and holder): its name is one value, made once.
	var lastOwner persistence.Owner
	var lastText any
	owner := func(o persistence.Owner) any {
		if lastText == nil || o != lastOwner {
			lastOwner, lastText = o, h.owner(o).text
		}
		return lastText
	}
	for _, o := range agents {
		ak := h.owner(o)
		keys = append(keys, ak.agent, ak.parked, ak.completed)
		args = append(args, ak.text)
	}
	args = append(args, len(quotas))
	for _, name := range quotas {
		keys = append(keys, s.k.quota(q, name))
		args = append(args, name)
	}
	var flags [7]byte
	for i, c := range commits {
		keys[i] = h.prefix + c.Fence.ID
		flags = [7]byte{'-', '-', 'r', '-', '0', '0', '-'}
		// Forgotten once declared: if this commit does not go through, the next one falls
		// back to the transaction for it.
		if _, ok := s.annotated.LoadAndDelete(keys[i]); ok {
			flags[6] = 'a'
			keys = append(keys, s.k.annotations(q, c.Fence.ID))
		}
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
		args = append(args, owner(c.Fence.Owner), attemptArg(c.Fence.Attempt), f, outcome)
		args = append(args, extra...)
	}
	keys = append(keys, h.failed) // last, whatever came before (see commitScript)
	return scriptCall{script: commitScript, keys: keys, args: args}
}

// attemptArgs are the attempts most runs have, made script arguments once.
var attemptArgs = func() (a [16]any) {
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

// attemptArg is attempt as a script argument.
func attemptArg(attempt int64) any {
	if attempt >= 0 && attempt < int64(len(attemptArgs)) {
		return attemptArgs[attempt]
	}
	return strconv.FormatInt(attempt, 10)
}

// The flags of most runs: completed with a result by the run that knows its job, which its
// owner holds, with no counters and no quotas. Sent as one value made once.
var (
	commonFlags          = [7]byte{'c', 'l', 'r', '-', 'o', '0', '-'}
	commonFlagsValue any = string(commonFlags[:])
)

// knownLean reports whether c's job may be read lean by commitScript: the caller knows it,
// as the run the fence names, and it has nothing of an earlier run or of a wait to clean (a
// result, a failure, an inner job it waits for, a parked slot), which only a fenced write of
// that same run could have changed.
func knownLean(c persistence.Commit) bool {
	k := c.Known
	return k != nil && k.Ref == c.Fence.Ref && k.Owner == c.Fence.Owner && k.Attempt == c.Fence.Attempt &&
		k.Status == persistence.StatusActive && k.Result == nil && k.Failure == nil && k.WaitingOn == "" && !k.Parked &&
		k.Unique == nil // read whole, for the script to find its key and leave it to the transaction
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
		var r any
		var rerr error
		if !s.noScripts {
			r, rerr = res[n], resErrs[n]
		}
		gj, ge, err := s.settle(ctx, groups[n], now, r, rerr)
		for m, i := range byQueue[q] {
			if err != nil {
				errs[i] = err
				continue
			}
			jobs[i], errs[i] = gj[m], ge[m]
		}
	}
	// The claims: those whose script met ids it was not given run again together, at once;
	// those it left to the transaction, and those it cannot take, claim through it.
	steps := make([]claimStep, len(cl))
	var again []int
	for k, c := range cl {
		switch at := scriptedAt[k]; {
		case c == nil:
			steps[k] = claimDone
		case at < 0:
			steps[k] = claimFallback
		default:
			if steps[k] = c.answer(now, res[at], resErrs[at]); steps[k] == claimAgain {
				again = append(again, k)
			}
		}
	}
	for len(again) > 0 {
		calls = calls[:0]
		for _, k := range again {
			calls = append(calls, cl[k].call(now))
		}
		res, resErrs = s.runScripts(ctx, calls)
		more := again[:0]
		for n, k := range again {
			if steps[k] = cl[k].answer(now, res[n], resErrs[n]); steps[k] == claimAgain {
				more = append(more, k)
			}
		}
		again = more
	}
	for k, c := range cl {
		switch steps[k] {
		case claimDone:
			if c != nil {
				claimed[k], claimErrs[k] = c.jobs, c.err
			}
		case claimFallback:
			claimed[k], claimErrs[k] = c.transaction(ctx)
		}
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
