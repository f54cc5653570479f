package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// Unique keys (persistence.Unique). A queue's unique key is a string key (keys.unique) that
// names the job holding it. The put that creates the job sets it in the same script that
// writes the job (uniquePutScript), so that racing puts from any number of processes create
// one job. Every transition that moves the job out of the key's states releases the key in
// its own transaction or script, and only while the key still names that job (compare and
// delete, releaseUniqueScript), so a key is never released for another job that took it
// since: a completion (Store.complete, for every commit path: the commit script leaves a job
// with a key to the transaction when it would complete it), a fail, cancel or revoke
// (failJob), a delete, a pull back to NEW. A completion with a keep period gives the key that
// period as its TTL instead, at most the retention, so the key never outlives the record.
//
// The states a key is held in are checked by the put that finds it: a key that names a job
// no longer in its states (or gone) is taken by the new job. So a key can be held by nothing
// but a job in its states, whatever process stopped when.

// uniqueRecord is a unique key and its options as the job record stores them (fUnique).
type uniqueRecord struct {
	Key    string `json:"key"`
	States string `json:"states,omitempty"` // letters (persistence.UniqueStates.String); none: the default
	Keep   int64  `json:"keep,omitempty"`   // µs
}

// encodeUnique renders u as the record's field, "" for none.
func encodeUnique(u *persistence.Unique) string {
	if u == nil {
		return ""
	}
	r := uniqueRecord{Key: u.Key, Keep: u.Keep.Microseconds()}
	if st := u.StatesOrDefault(); st != persistence.DefaultUniqueStates {
		r.States = st.String()
	}
	return mustJSON(r)
}

// decodeUnique reads the record's field: nil for "", an error for a value encodeUnique
// cannot have written.
func decodeUnique(v string) (*persistence.Unique, error) {
	if v == "" {
		return nil, nil
	}
	var r uniqueRecord
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, err
	}
	st, err := persistence.ParseUniqueStates(r.States)
	if err != nil {
		return nil, err
	}
	u := &persistence.Unique{Key: r.Key, States: st, Keep: time.Duration(r.Keep) * time.Microsecond}
	if r.Keep > int64(persistence.MaxTime.Sub(time.Time{})/time.Microsecond) {
		return nil, fmt.Errorf("unique keep period of %d µs", r.Keep)
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	if u.States == persistence.DefaultUniqueStates {
		u.States = 0 // as put
	}
	return u, nil
}

// releaseUniqueScript releases a unique key if it still names the job: deleted, or given
// the keep period as its TTL. It is sent whole (EVAL) inside the transaction of the
// transition, so that a server that lost it cannot refuse it there.
//
// KEYS[1] the unique key. ARGV[1] the job's id, ARGV[2] the keep period in ms ("0": delete).
var releaseUniqueScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// releaseUnique queues, in p, the release of j's unique key (none: nothing): kept for its
// keep period when keep is set, else deleted.
func (s *Store) releaseUnique(ctx context.Context, p redis.Pipeliner, j *persistence.Job, keep bool) {
	if j.Unique == nil {
		return
	}
	ms := int64(0)
	if keep && j.Unique.Keep > 0 {
		d := j.Unique.Keep
		if s.retention > 0 && d > s.retention {
			d = s.retention // the key must not outlive the record it names
		}
		ms = max(1, d.Milliseconds())
	}
	releaseUniqueScript.Eval(ctx, p, []string{s.k.unique(j.Queue, j.Unique.Key)}, j.ID, ms)
}

// retakeUniqueScript gives a unique key back to a job put to run again (Store.Rerun) when the
// key is free or still names it (a completed job's keep period), without a TTL.
//
// KEYS[1] the unique key. ARGV[1] the job's id.
var retakeUniqueScript = redis.NewScript(`
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`)

// retakeUnique queues, in p, retakeUniqueScript for j.
func (s *Store) retakeUnique(ctx context.Context, p redis.Pipeliner, j *persistence.Job) {
	if j.Unique != nil {
		retakeUniqueScript.Eval(ctx, p, []string{s.k.unique(j.Queue, j.Unique.Key)}, j.ID)
	}
}

// hasUnique reports whether some spec of groups names a unique key: PutEach then takes the
// unique put's path.
func hasUnique(groups [][]persistence.JobSpec) bool {
	for _, specs := range groups {
		for i := range specs {
			if specs[i].Unique != nil {
				return true
			}
		}
	}
	return false
}

// uniquePutScript puts the jobs of a PutEach call of which some name unique keys, in one
// atomic step. It decides first, reading only: for each job with a key, whether the key is
// held (by a job of its queue in the key's states, or by a job this call creates before it),
// and makes the job only if it is not. A job that holds the key is answered instead, and with
// the put's debounce, when it is PENDING and was never claimed, takes the put's call and
// begin_after. The key's holder is named by the key, but its record's key must be declared
// before the script runs: when a holder was not declared, the script writes nothing and
// answers {"again", id, …}, for the caller to call again with those declared.
//
// KEYS[1] the queue's dispatchers hash (where the marks of the priorities in use are), KEYS[2]
// to KEYS[10] the pending zsets of priorities 9 down to 1 (keys.pendingAt), then each job's
// key, then, for each job with a unique key, that key (in the jobs' order), then the declared
// holders' job keys. ARGV[1] now µs, ARGV[2] n jobs, ARGV[3] the wake channel, ARGV[4] the
// wake payload, ARGV[5] how many holders are declared, and their ids; then for each job: its
// id, the index in KEYS of its unique key ("0": none), "1" to debounce, its position in the
// pending zset, its begin_after µs, its priority, how many hash values follow, and its hash's
// fields and values (its call first). A debounced job stays at its own priority.
//
// It returns {codes, …}: one letter per job: "n" made, "d" a duplicate of a job that exists
// and "b" one debounced, each followed by that job's id and its hash joined by NUL bytes
// after the writes; "c" a duplicate of a job this call made, followed by that job's index (1-based).
var uniquePutScript = redis.NewScript(scriptGlobals + `
local now, n, channel, payload = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local pendingKeys = 10 -- the dispatchers hash and the nine pending zsets come first
local known = {} -- id → index in KEYS of its job key
local g = tonumber(ARGV[5])
local a = 6
for k = 1, g do known[ARGV[a]] = #KEYS - g + k; a = a + 1 end
local jobs = {}
for i = 1, n do
  local j = {id = ARGV[a], uk = tonumber(ARGV[a + 1]), debounce = ARGV[a + 2] == '1', score = ARGV[a + 3],
    beginAfter = ARGV[a + 4], priority = tonumber(ARGV[a + 5]), first = a + 7, count = tonumber(ARGV[a + 6]),
    key = pendingKeys + i}
  a = a + 7 + j.count
  known[j.id] = j.key
  jobs[i] = j
end
-- The decisions, read only.
local made, missing = {}, {} -- unique key → index of the job of this call that takes it
for i, j in ipairs(jobs) do
  j.code = 'n'
  if j.uk > 0 then
    local ukey = KEYS[j.uk]
    if made[ukey] then
      j.code, j.dupOf = 'c', made[ukey]
    else
      local h = redis.call('GET', KEYS[j.uk])
      if h then
        local hk = known[h]
        if not hk then
          missing[#missing + 1] = h
        else
          local v = redis.call('HMGET', KEYS[hk], 'status', 'begin_after', 'created', 'attempt', 'unique', 'priority')
          local st, held = v[1], false
          if st then
            local states = string.match(v[5] or '', '"states":"(%a*)"') or 'psa'
            if st == 'pending' then
              local ba = tonumber(v[2] or v[3] or '0') or 0
              local letter = 'p'
              if ba > now then letter = 's' end
              held = string.find(states, letter, 1, true) ~= nil
            elseif st == 'assigned' or st == 'active' or st == 'callbacks' then
              held = string.find(states, 'a', 1, true) ~= nil
            elseif st == 'completed' then
              held = redis.call('PTTL', KEYS[j.uk]) > 0 -- its keep period
            end
          end
          if held then
            j.code, j.holder, j.holderID, j.holderPriority = 'd', hk, h, tonumber(v[6] or '5') or 5
            if j.debounce and st == 'pending' and (not v[4] or v[4] == '0') then j.code = 'b' end
          end
        end
      end
      if j.code == 'n' then made[ukey] = i end
    end
  end
end
if #missing > 0 then
  table.insert(missing, 1, 'again')
  return missing
end
-- The writes.
local scored = {} -- priority → {score, id, …} not yet added
local function queue(priority, score, id)
  if priority < 1 or priority > 9 then priority = 5 end
  local z = scored[priority]
  if not z then
    z = {}
    scored[priority] = z
    if priority ~= 5 then -- marked in use, as queueAt marks it (priorities.go)
      redis.call('HSETNX', KEYS[1], '!p' .. priority, '1')
      redis.call('HSETNX', KEYS[1], '!p', '1')
    end
  end
  z[#z + 1] = score
  z[#z + 1] = id
  if #z >= 1000 then
    redis.call('ZADD', KEYS[11 - priority], unpack(z))
    scored[priority] = {}
  end
end
local codes, out, wrote = {}, {''}, false
for i, j in ipairs(jobs) do
  codes[i] = j.code
  if j.code == 'n' then
    redis.call('HSET', KEYS[j.key], unpack(ARGV, j.first, j.first + j.count - 1))
    if j.uk > 0 then redis.call('SET', KEYS[j.uk], j.id) end
    queue(j.priority, j.score, j.id)
    wrote = true
  elseif j.code == 'b' then
    redis.call('HSET', KEYS[j.holder], 'call', ARGV[j.first + 1], 'begin_after', j.beginAfter)
    queue(j.holderPriority, j.score, j.holderID)
    wrote = true
  end
end
for p, z in pairs(scored) do
  if #z > 0 then redis.call('ZADD', KEYS[11 - p], unpack(z)) end
end
for _, j in ipairs(jobs) do
  if j.code == 'd' or j.code == 'b' then
    out[#out + 1] = j.holderID
    out[#out + 1] = table.concat(redis.call('HGETALL', KEYS[j.holder]), '\0')
  elseif j.code == 'c' then
    out[#out + 1] = tostring(j.dupOf)
  end
end
if wrote then redis.call('PUBLISH', channel, payload) end
out[1] = table.concat(codes)
return out
`)

// maxUniqueRounds bounds how many times a unique put calls its script again to declare the
// holders it found: each round declares the holders the previous one named, so a second is
// enough unless the keys keep changing hands meanwhile.
const maxUniqueRounds = 5

// putEachUnique is PutEach for groups of which some spec names a unique key: every group is
// checked as PutEach checks it, then the groups that may go are put by one script.
func (s *Store) putEachUnique(ctx context.Context, q string, groups [][]persistence.JobSpec) ([][]*persistence.Job, []error, error) {
	const op = "put"
	errs := make([]error, len(groups))
	calls := make([][][]byte, len(groups))
	needQuotas := false
	for g, specs := range groups {
		calls[g] = make([][]byte, len(specs))
		for i := range specs {
			call, err := specs[i].AppendCall(nil)
			if err != nil {
				errs[g] = fmt.Errorf("%s: %w", op, err)
				break
			}
			calls[g][i] = call
			needQuotas = needQuotas || len(specs[i].QuotaNames) > 0
		}
	}
	if needQuotas {
		if err := s.checkGroupQuotas(ctx, op, q, groups, errs); err != nil {
			return nil, nil, err
		}
	}
	out := make([][]*persistence.Job, len(groups))
	var all []*persistence.Job
	var allCalls [][]byte
	var uniqueAt []int // index in all of each job with a key
	var debounce []bool
	if !slices.ContainsFunc(errs, func(e error) bool { return e == nil }) {
		return out, errs, nil
	}
	if err := s.rememberQueue(ctx, q); err != nil {
		return nil, nil, err
	}
	now, err := s.now(ctx)
	if err != nil {
		return nil, nil, err
	}
	for g, specs := range groups {
		if errs[g] != nil {
			continue
		}
		out[g] = make([]*persistence.Job, len(specs))
		for i, spec := range specs {
			j := newJob(q, spec, queuedJob, now)
			j.Status = persistence.StatusPending
			if spec.Unique != nil {
				u := *spec.Unique
				u.Debounce = false // the put's, not the job's
				j.Unique = &u
				uniqueAt = append(uniqueAt, len(all))
			}
			out[g][i] = j
			debounce = append(debounce, spec.Unique != nil && spec.Unique.Debounce)
			all = append(all, j)
			allCalls = append(allCalls, calls[g][i])
		}
	}
	if len(all) == 0 {
		return out, errs, nil
	}
	h := s.heads.get(q, s.k)
	keys := make([]string, 0, 10+len(all)+len(uniqueAt))
	keys = append(keys, s.k.dispatchers(q))
	keys = append(keys, s.pendingKeys(q)...) // levels: 9 down to 1, as the script indexes them
	for _, j := range all {
		keys = append(keys, s.k.job(q, j.ID))
	}
	ukAt := make([]int, len(all)) // 1-based index in KEYS of each job's unique key, 0: none
	for _, i := range uniqueAt {
		keys = append(keys, s.k.unique(q, all[i].Unique.Key))
		ukAt[i] = len(keys)
	}
	head := len(keys)
	args := []any{micros(now), len(all), s.k.wake(q), wakePayload(q, all)}
	body := make([]any, 0, 16*len(all))
	for i, j := range all {
		set, _ := encodeJobCall(j, allCalls[i], true)
		d := "0"
		if debounce[i] {
			d = "1"
		}
		body = append(body, j.ID, ukAt[i], d, s.position(j, now), micros(j.BeginAfter), level(j), len(set))
		body = append(body, set...)
	}
	var holders []string
	for range maxUniqueRounds {
		keys = keys[:head]
		for _, id := range holders {
			keys = append(keys, s.k.job(q, id))
		}
		call := append(append([]any{}, args...), len(holders))
		for _, id := range holders {
			call = append(call, id)
		}
		call = append(call, body...)
		r, err := s.runScript(ctx, scriptCall{script: uniquePutScript, keys: keys, args: call})
		if err != nil {
			return nil, nil, s.fail(op, err)
		}
		res, _ := r.([]any)
		if len(res) == 0 {
			return nil, nil, fmt.Errorf("%s: %w: the unique put script answered %T", op, persistence.ErrCorrupt, r)
		}
		if code, _ := res[0].(string); code == "again" {
			for _, v := range res[1:] {
				if id, ok := v.(string); ok && persistence.ValidateName("job id", id) == nil {
					if !slices.Contains(holders, id) {
						holders = append(holders, id)
					}
				} else {
					return nil, nil, fmt.Errorf("%s: %w: a unique key names job %v", op, persistence.ErrCorrupt, v)
				}
			}
			continue
		}
		if err := s.uniqueAnswer(q, all, res); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op, err)
		}
		var made []*persistence.Job
		for _, j := range all {
			if !j.Duplicate {
				made = append(made, j)
			}
		}
		for _, j := range made[:min(len(made), maxExpected)] {
			h.expect(s.k.job(q, j.ID))
		}
		for _, j := range made {
			h.useLevel(level(j)) // a debounced job keeps its priority, already in use
		}
		// The duplicates answered in place of the jobs made for them.
		k := 0
		for g := range out {
			for i := range out[g] {
				out[g][i] = all[k]
				k++
			}
		}
		return out, errs, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: the holders of unique keys kept changing", op, persistence.ErrConflict)
}

// uniqueAnswer reads uniquePutScript's answer res for jobs all, replacing each duplicate in
// all with the job that holds its key.
func (s *Store) uniqueAnswer(q string, all []*persistence.Job, res []any) error {
	codes, _ := res[0].(string)
	if len(codes) != len(all) {
		return fmt.Errorf("%w: the unique put script answered %d codes for %d jobs", persistence.ErrCorrupt, len(codes), len(all))
	}
	next := 1
	for i := range all {
		code := codes[i]
		if code == 'n' {
			continue
		}
		if next >= len(res) {
			return fmt.Errorf("%w: the unique put script answered %q", persistence.ErrCorrupt, codes)
		}
		v := res[next]
		next++
		if code == 'c' {
			str, _ := v.(string)
			k, err := strconv.Atoi(str)
			if err != nil || k < 1 || k > i {
				return fmt.Errorf("%w: the unique put script answered job %v for a duplicate", persistence.ErrCorrupt, v)
			}
			dup := *all[k-1] // made by this call, for an earlier spec
			dup.Duplicate = true
			all[i] = &dup
			continue
		}
		id, _ := v.(string)
		if next >= len(res) || persistence.ValidateName("job id", id) != nil {
			return fmt.Errorf("%w: the unique put script answered %q", persistence.ErrCorrupt, codes)
		}
		j, err := decodeFlat(persistence.Ref{Queue: q, ID: id}, res[next])
		next++
		if j == nil {
			return err
		}
		all[i] = j
		all[i].Duplicate, all[i].Debounced = true, code == 'b'
	}
	return nil
}

// UniqueHolder returns the id of the job that holds unique key key in queue q, "" when no job
// does. A key named by a job no longer in the key's states is reported all the same: the next
// put with the key takes it.
func (s *Store) UniqueHolder(ctx context.Context, q, key string) (string, error) {
	const op = "unique holder"
	if err := validQueue(op, q); err != nil {
		return "", err
	}
	if err := (&persistence.Unique{Key: key}).Validate(); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	id, err := s.rdb.Get(ctx, s.k.unique(q, key)).Result()
	if err == redis.Nil {
		return "", nil
	}
	return id, s.fail(op, err)
}
