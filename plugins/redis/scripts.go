package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Every operation is one script, run with EVALSHA (and
// EVAL when Redis does not have it cached, which go-redis's Script does),
// so Redis applies it atomically: conditions, the change, the revision
// stamps and the events in the stream happen together or not at all.
//
// Every script receives the store's nine keys as KEYS, in the order of
// keyNames, all under one hash tag: a script is valid on one Redis
// Cluster slot and touches no key it does not declare.
//
// Layout (P is the key prefix):
//
//	P rev      string  the store revision (the last change's)
//	P val      hash    key -> value
//	P meta     hash    key -> "version,expires_at_ms,value_length"
//	P idx      zset    every stored key, score 0: ordered by bytes (BYLEX)
//	P exp      zset    key -> expires_at_ms, for keys with a TTL
//	P events   stream  one entry per revision, ID "<revision>-0"
//	P bytes    string  the sum of key and value lengths of stored keys
//	P epoch    string  random; a new one means the store's data was lost
//	P scratch  hash    Increment's int64 arithmetic (empty between calls)
//
// Stored keys include expired ones that cleanup has not removed yet:
// every read compares expires_at with the server's clock (TIME) and skips
// them, counts and stats subtract them.
//
// Write scripts carry no flags in their shebang, so Redis refuses them
// whole, before they run, when it is out of memory (OOM): none is ever
// cut off half way. Read scripts are flagged no-writes. Every script but
// init starts by checking the epoch key; when it is missing (a Redis that
// lost its data) it returns {-1} and the caller runs init and retries.
//
// Replies are arrays whose first element is a status: 0 ok, 1 conflict
// (the current version, and in a batch the op index), 2 not found, 3 not
// a counter (the value's first bytes), 4 increment overflow (the value),
// -1 no epoch. Numbers that may exceed 2^53 never reach Lua as numbers:
// counters go through HINCRBY, revisions, versions and milliseconds stay
// far below it.

const luaHeader = `
local K_REV, K_VAL, K_META, K_IDX, K_EXP, K_EV, K_BYTES, K_EPOCH, K_SCRATCH =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local function num(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(m)
  local v, e, l = string.match(m, '^(%d+),(%d+),(%d+)$')
  return tonumber(v), tonumber(e), tonumber(l)
end
local function meta(v, e, l) return num(v) .. ',' .. num(e) .. ',' .. num(l) end
local function head() return redis.call('GET', K_REV) or '0' end
-- bulk runs cmd on key with args in slices of at most 1000 (Lua's unpack
-- has a limit of a few thousand values).
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
`

// luaEpoch starts every script but init.
const luaEpoch = `
if redis.call('EXISTS', K_EPOCH) == 0 then return {-1} end
`

// luaEvent appends one event to the stream, trimmed to about the
// retention (ARGV[1] in every write script). Every entry has the same
// fields, so the stream stores their names once per node.
const luaEvent = `
local RETAIN = ARGV[1]
local function event(rev, t, k, v, ver, exp)
  redis.call('XADD', K_EV, 'MAXLEN', '~', RETAIN, num(rev) .. '-0', 't', t, 'k', k, 'v', v, 'n', num(ver), 'x', num(exp))
end
`

func readScript(body string) *goredis.Script {
	return goredis.NewScript("#!lua flags=no-writes\n" + luaHeader + luaEpoch + body)
}

func writeScript(body string) *goredis.Script {
	return goredis.NewScript("#!lua\n" + luaHeader + luaEpoch + luaEvent + body)
}

// scriptInit makes sure the store has an epoch and that its revision is
// at least ARGV[2] (the highest revision this process has seen) and the
// last revision in the stream: a Redis that lost its data, or a replica
// promoted before it had every write, must not hand out revisions again.
// ARGV[1] is the epoch to set when there is none. Reply: {epoch,
// revision, changed}.
var scriptInit = goredis.NewScript("#!lua\n" + luaHeader + `
local changed = 0
local ep = redis.call('GET', K_EPOCH)
if not ep then
  ep = ARGV[1]
  redis.call('SET', K_EPOCH, ep)
  changed = 1
end
local rev = tonumber(head())
local want = tonumber(ARGV[2])
local top = redis.call('XREVRANGE', K_EV, '+', '-', 'COUNT', 1)
if #top > 0 then
  local t = tonumber(string.match(top[1][1], '^(%d+)'))
  if t > want then want = t end
end
if rev < want then
  redis.call('SET', K_REV, num(want))
  rev = want
  changed = 1
end
return {ep, num(rev), changed}
`)

// scriptHead: the store revision. Reply {0, rev}.
var scriptHead = readScript(`return {0, head()}`)

// scriptGet: ARGV key. Reply {0, rev} or {0, rev, meta, value}.
var scriptGet = readScript(`
local m = redis.call('HGET', K_META, ARGV[1])
local rev = head()
if not m then return {0, rev} end
local _, e = parse(m)
if e ~= 0 and e <= now_ms() then return {0, rev} end
return {0, rev, m, redis.call('HGET', K_VAL, ARGV[1])}
`)

// scriptGetMany: ARGV keys (1 to 1000). Reply {0, rev, metas, values},
// false (nil) for a missing or expired key.
var scriptGetMany = readScript(`
local rev = head()
local ms = redis.call('HMGET', K_META, unpack(ARGV))
local vs = redis.call('HMGET', K_VAL, unpack(ARGV))
local now
for i = 1, #ARGV do
  if ms[i] then
    local _, e = parse(ms[i])
    if e ~= 0 then
      now = now or now_ms()
      if e <= now then ms[i] = false; vs[i] = false end
    end
  end
end
return {0, rev, ms, vs}
`)

// scriptList: ARGV lo, hi (ZRANGE BYLEX bounds), limit, max bytes,
// keys only ("1"). Live keys in byte order while the page is not full
// (kv.ListRequest.PageFull: the sizes come from the metadata, so values
// are read only for the entries returned). Reply {0, rev, keys, metas,
// values, more}.
var scriptList = readScript(`
local rev = head()
local lo, hi = ARGV[1], ARGV[2]
local limit, maxb, keysonly = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local now = now_ms()
local ks, ms = {}, {}
local n, size, more = 0, 0, 0
local step = math.min(limit + 1, 1000)
while more == 0 do
  local batch = redis.call('ZRANGE', K_IDX, lo, hi, 'BYLEX', 'LIMIT', 0, step)
  if #batch == 0 then break end
  local metas = redis.call('HMGET', K_META, unpack(batch))
  for i = 1, #batch do
    local m = metas[i]
    if m then
      local _, e, l = parse(m)
      if e == 0 or e > now then
        local k = batch[i]
        local sz = #k
        if not keysonly then sz = sz + l end
        if n >= limit or (n > 0 and size + sz > maxb) then
          more = 1
          break
        end
        n = n + 1
        size = size + sz
        ks[n] = k
        ms[n] = m
      end
    end
  end
  if #batch < step then break end
  lo = '(' .. batch[#batch]
end
local vs = {}
if not keysonly then
  for i = 1, n, 1000 do
    local part = redis.call('HMGET', K_VAL, unpack(ks, i, math.min(i + 999, n)))
    for j = 1, #part do vs[i + j - 1] = part[j] end
  end
end
return {0, rev, ks, ms, vs, more}
`)

// scriptCount: ARGV lo, hi, prefix. The index counts stored keys; the
// expired ones cleanup has not removed yet are subtracted. Reply {0, rev,
// count}.
var scriptCount = readScript(`
local rev = head()
local p = ARGV[3]
local now = now_ms()
local n
if p == '' then
  n = redis.call('ZCARD', K_IDX) - redis.call('ZCOUNT', K_EXP, '-inf', num(now))
else
  n = redis.call('ZLEXCOUNT', K_IDX, ARGV[1], ARGV[2])
  local dead = redis.call('ZRANGE', K_EXP, '-inf', num(now), 'BYSCORE')
  for i = 1, #dead do
    if string.sub(dead[i], 1, #p) == p then n = n - 1 end
  end
end
return {0, rev, n}
`)

// scriptStats: the index's count and the running byte total, less the
// expired keys not yet removed, and the stream's first entry. Reply {0,
// rev, keys, bytes, first stream ID or "0"}.
var scriptStats = readScript(`
local rev = head()
local now = now_ms()
local n = redis.call('ZCARD', K_IDX)
local bytes = tonumber(redis.call('GET', K_BYTES) or '0')
local dead = redis.call('ZRANGE', K_EXP, '-inf', num(now), 'BYSCORE')
for i = 1, #dead, 1000 do
  local j = math.min(i + 999, #dead)
  local ms = redis.call('HMGET', K_META, unpack(dead, i, j))
  for x = 1, #ms do
    if ms[x] then
      local _, _, l = parse(ms[x])
      n = n - 1
      bytes = bytes - #dead[i + x - 1] - l
    end
  end
end
local first = redis.call('XRANGE', K_EV, '-', '+', 'COUNT', 1)
local f = '0'
if #first > 0 then f = first[1][1] end
return {0, rev, n, num(bytes), f}
`)

// scriptHistory: ARGV from, count, bytes. Entries from revision from
// on, up to count of them and about bytes of values. Reply {0, rev, first
// stream ID or "0", entries}.
var scriptHistory = readScript(`
local rev = head()
local first = redis.call('XRANGE', K_EV, '-', '+', 'COUNT', 1)
local f = '0'
if #first > 0 then f = first[1][1] end
local want, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local out, size = {}, 0
local lo = ARGV[1] .. '-0'
while #out < want and size < budget do
  local n = math.min(100, want - #out)
  local part = redis.call('XRANGE', K_EV, lo, '+', 'COUNT', n)
  for i = 1, #part do
    out[#out + 1] = part[i]
    size = size + #part[i][2][6]
  end
  if #part < n then break end
  lo = '(' .. part[#part][1]
end
return {0, rev, f, out}
`)

// scriptPut: ARGV retention, key, value, ttl ms, condition ("n", "a",
// "v"), version. Reply {0, rev, expires_at} or {1, current}.
var scriptPut = writeScript(`
local key, val = ARGV[2], ARGV[3]
local ttl, ck, cv = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local cur, oe, ol = 0, 0, 0
if m then
  local v, e, l = parse(m)
  oe, ol = e, l
  if e == 0 or e > now then cur = v end
end
if (ck == 'a' and cur ~= 0) or (ck == 'v' and cur ~= cv) then return {1, cur} end
local rev = redis.call('INCR', K_REV)
local exp = 0
if ttl > 0 then exp = now + ttl end
redis.call('HSET', K_VAL, key, val)
redis.call('HSET', K_META, key, meta(rev, exp, #val))
if m then
  if #val ~= ol then redis.call('INCRBY', K_BYTES, num(#val - ol)) end
else
  redis.call('ZADD', K_IDX, 0, key)
  redis.call('INCRBY', K_BYTES, num(#key + #val))
end
if exp > 0 then
  redis.call('ZADD', K_EXP, num(exp), key)
elseif oe > 0 then
  redis.call('ZREM', K_EXP, key)
end
event(rev, 'P', key, val, rev, exp)
return {0, rev, num(exp)}
`)

// scriptDelete: ARGV retention, key, condition ("n", "v"), version.
// An expired key is left for cleanup. Reply {0, deleted, rev} or {1,
// current}.
var scriptDelete = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local cur, oe, ol = 0, 0, 0
if m then
  local v, e, l = parse(m)
  if e == 0 or e > now then cur, oe, ol = v, e, l end
end
if ARGV[3] == 'v' and cur ~= tonumber(ARGV[4]) then return {1, cur} end
if cur == 0 then return {0, 0, head()} end
local rev = redis.call('INCR', K_REV)
redis.call('HDEL', K_VAL, key)
redis.call('HDEL', K_META, key)
redis.call('ZREM', K_IDX, key)
if oe > 0 then redis.call('ZREM', K_EXP, key) end
redis.call('INCRBY', K_BYTES, num(-(#key + ol)))
event(rev, 'D', key, '', cur, 0)
return {0, 1, rev}
`)

// scriptIncrement: ARGV retention, key, delta. The stored text must be
// what strconv.ParseInt accepts in base 10 (an optional sign, digits); it
// is normalised and added to with HINCRBY on the scratch hash, so the
// arithmetic is Redis's exact int64 with its overflow check. Reply {0,
// rev, new value, expires_at}, {3, value's first bytes} or {4, value}.
var scriptIncrement = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local base, exp, oe, ol, live = '0', 0, 0, 0, false
if m then
  local _, e, l = parse(m)
  oe, ol = e, l
  if e == 0 or e > now then live = true; exp = e end
end
if live then
  local raw = redis.call('HGET', K_VAL, key) or ''
  local sign, digits = string.match(raw, '^([+-]?)(%d+)$')
  if not digits then return {3, string.sub(raw, 1, 64)} end
  digits = string.gsub(digits, '^0+', '')
  if digits == '' then digits = '0' end
  if #digits > 19 then return {3, string.sub(raw, 1, 64)} end
  if sign == '-' and digits ~= '0' then base = '-' .. digits else base = digits end
end
redis.call('HSET', K_SCRATCH, 'n', base)
local r = redis.pcall('HINCRBY', K_SCRATCH, 'n', ARGV[3])
if type(r) == 'table' and r.err then
  redis.call('HDEL', K_SCRATCH, 'n')
  if string.find(r.err, 'overflow', 1, true) then return {4, base} end
  return {3, base}
end
local val = redis.call('HGET', K_SCRATCH, 'n')
redis.call('HDEL', K_SCRATCH, 'n')
local rev = redis.call('INCR', K_REV)
redis.call('HSET', K_VAL, key, val)
redis.call('HSET', K_META, key, meta(rev, exp, #val))
if m then
  if #val ~= ol then redis.call('INCRBY', K_BYTES, num(#val - ol)) end
else
  redis.call('ZADD', K_IDX, 0, key)
  redis.call('INCRBY', K_BYTES, num(#key + #val))
end
if not live and oe > 0 then redis.call('ZREM', K_EXP, key) end
event(rev, 'P', key, val, rev, exp)
return {0, rev, val, num(exp)}
`)

// scriptRefresh: ARGV retention, key, ttl ms, condition ("n", "v"),
// version. Reply {0, rev, version, expires_at}, {1, current} or {2}.
var scriptRefresh = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
if not m then return {2} end
local v, e, l = parse(m)
if e ~= 0 and e <= now then return {2} end
if ARGV[4] == 'v' and v ~= tonumber(ARGV[5]) then return {1, v} end
local ttl = tonumber(ARGV[3])
local exp = 0
if ttl > 0 then exp = now + ttl end
local rev = redis.call('INCR', K_REV)
redis.call('HSET', K_META, key, meta(v, exp, l))
if exp > 0 then
  redis.call('ZADD', K_EXP, num(exp), key)
elseif e > 0 then
  redis.call('ZREM', K_EXP, key)
end
event(rev, 'T', key, '', v, exp)
return {0, rev, v, num(exp)}
`)

// scriptBatch: ARGV retention, then six per op: kind ("P", "D"), key,
// value, ttl ms, condition ("n", "a", "v"), version. The ops are planned
// in order against an overlay of the batch's own changes, with nothing
// written, so a failed condition leaves no trace; then every key's final
// state is written in bulk and the events appended in op order. Reply
// {0, rev, {rev, expires_at, deleted} per op} or {1, current, op index}.
var scriptBatch = writeScript(`
local now = now_ms()
local nops = (#ARGV - 1) / 6
local keys = {}
for i = 1, nops do keys[i] = ARGV[(i - 1) * 6 + 3] end
local orig = {}
for i = 1, nops, 1000 do
  local j = math.min(i + 999, nops)
  local part = redis.call('HMGET', K_META, unpack(keys, i, j))
  for x = 1, #part do
    local k = keys[i + x - 1]
    if orig[k] == nil then orig[k] = part[x] end
  end
end
local r0 = tonumber(head())
local r = r0
local ov, res, evs = {}, {}, {}
for i = 0, nops - 1 do
  local b = 2 + i * 6
  local kind, key, val = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local ttl, ck, cv = tonumber(ARGV[b + 3]), ARGV[b + 4], tonumber(ARGV[b + 5])
  local cur = 0
  local o = ov[key]
  if o then
    if not o.del then cur = o.ver end
  elseif orig[key] then
    local v, e = parse(orig[key])
    if e == 0 or e > now then cur = v end
  end
  if (ck == 'a' and cur ~= 0) or (ck == 'v' and cur ~= cv) then return {1, cur, i} end
  if kind == 'P' then
    r = r + 1
    local exp = 0
    if ttl > 0 then exp = now + ttl end
    ov[key] = {ver = r, exp = exp, val = val}
    res[#res + 1] = r; res[#res + 1] = num(exp); res[#res + 1] = 0
    evs[#evs + 1] = {r, 'P', key, val, r, exp}
  elseif cur ~= 0 then
    r = r + 1
    ov[key] = {del = true}
    res[#res + 1] = r; res[#res + 1] = '0'; res[#res + 1] = 1
    evs[#evs + 1] = {r, 'D', key, '', cur, 0}
  else
    res[#res + 1] = 0; res[#res + 1] = '0'; res[#res + 1] = 0
  end
end
if r == r0 then return {0, num(r0), res} end
local hv, hm, hd, zi, zri, zx, zrx = {}, {}, {}, {}, {}, {}, {}
local dbytes = 0
for key, o in pairs(ov) do
  local m = orig[key]
  local oe, ol = 0, 0
  if m then
    local _, e, l = parse(m)
    oe, ol = e, l
  end
  if o.del then
    if m then
      hd[#hd + 1] = key
      zri[#zri + 1] = key
      if oe > 0 then zrx[#zrx + 1] = key end
      dbytes = dbytes - #key - ol
    end
  else
    hv[#hv + 1] = key; hv[#hv + 1] = o.val
    hm[#hm + 1] = key; hm[#hm + 1] = meta(o.ver, o.exp, #o.val)
    if m then
      dbytes = dbytes + #o.val - ol
    else
      zi[#zi + 1] = 0; zi[#zi + 1] = key
      dbytes = dbytes + #key + #o.val
    end
    if o.exp > 0 then
      zx[#zx + 1] = num(o.exp); zx[#zx + 1] = key
    elseif oe > 0 then
      zrx[#zrx + 1] = key
    end
  end
end
bulk('HSET', K_VAL, hv)
bulk('HSET', K_META, hm)
bulk('HDEL', K_VAL, hd)
bulk('HDEL', K_META, hd)
bulk('ZADD', K_IDX, zi)
bulk('ZREM', K_IDX, zri)
bulk('ZADD', K_EXP, zx)
bulk('ZREM', K_EXP, zrx)
redis.call('SET', K_REV, num(r))
if dbytes ~= 0 then redis.call('INCRBY', K_BYTES, num(dbytes)) end
for i = 1, #evs do
  local ev = evs[i]
  event(ev[1], ev[2], ev[3], ev[4], ev[5], ev[6])
end
return {0, num(r), res}
`)

// scriptDeletePrefix: ARGV retention, lo, hi. Every live key in the
// range, in byte order, each with its own revision. Reply {0, deleted,
// rev}.
var scriptDeletePrefix = writeScript(`
local now = now_ms()
local lo, hi = ARGV[2], ARGV[3]
local dk, dv, dx = {}, {}, {}
local dbytes = 0
while true do
  local batch = redis.call('ZRANGE', K_IDX, lo, hi, 'BYLEX', 'LIMIT', 0, 1000)
  if #batch == 0 then break end
  local ms = redis.call('HMGET', K_META, unpack(batch))
  for i = 1, #batch do
    if ms[i] then
      local v, e, l = parse(ms[i])
      if e == 0 or e > now then
        local k = batch[i]
        dk[#dk + 1] = k
        dv[#dv + 1] = v
        if e > 0 then dx[#dx + 1] = k end
        dbytes = dbytes + #k + l
      end
    end
  end
  if #batch < 1000 then break end
  lo = '(' .. batch[#batch]
end
local n = #dk
if n == 0 then return {0, 0, head()} end
local r0 = tonumber(head())
bulk('HDEL', K_VAL, dk)
bulk('HDEL', K_META, dk)
bulk('ZREM', K_IDX, dk)
bulk('ZREM', K_EXP, dx)
redis.call('SET', K_REV, num(r0 + n))
redis.call('INCRBY', K_BYTES, num(-dbytes))
for i = 1, n do event(r0 + i, 'D', dk[i], '', dv[i], 0) end
return {0, n, num(r0 + n)}
`)

// scriptCleanup: ARGV retention, limit (1 to 1000). Removes up to limit
// keys whose expiry has passed on the server's clock, soonest expiry
// first, each with an EXPIRE event and its own revision. Two hosts that
// run it at once each remove different keys: a script runs alone, and a
// removed key is gone from the expiry set. Reply {0, removed, rev}.
var scriptCleanup = writeScript(`
local now = now_ms()
local ks = redis.call('ZRANGE', K_EXP, '-inf', num(now), 'BYSCORE', 'LIMIT', 0, ARGV[2])
if #ks == 0 then return {0, 0, head()} end
local ms = redis.call('HMGET', K_META, unpack(ks))
local dk, dv, stray = {}, {}, {}
local dbytes = 0
for i = 1, #ks do
  local k = ks[i]
  local v, e, l = 0, 0, 0
  if ms[i] then v, e, l = parse(ms[i]) end
  if e > 0 and e <= now then
    dk[#dk + 1] = k
    dv[#dv + 1] = v
    dbytes = dbytes + #k + l
  elseif e > 0 then
    redis.call('ZADD', K_EXP, num(e), k) -- an index entry that disagrees with the key: the key is right
  else
    stray[#stray + 1] = k
  end
end
bulk('ZREM', K_EXP, stray)
local n = #dk
if n == 0 then return {0, 0, head()} end
local r0 = tonumber(head())
bulk('HDEL', K_VAL, dk)
bulk('HDEL', K_META, dk)
bulk('ZREM', K_IDX, dk)
bulk('ZREM', K_EXP, dk)
redis.call('SET', K_REV, num(r0 + n))
redis.call('INCRBY', K_BYTES, num(-dbytes))
for i = 1, n do event(r0 + i, 'E', dk[i], '', dv[i], 0) end
return {0, n, num(r0 + n)}
`)
