package redis

// The read scripts (scripts.go describes the layout and the conventions):
// Count, Stats and history, and the fallbacks of Get, GetMany and List.

// luaBase reads the base revision from the epoch.
const luaBase = `
local function base()
  local ep = redis.call('GET', K_EPOCH) or ''
  return string.match(ep, ':(%d+)$') or '1'
end
`

// scriptHead: the store revision. Reply {0, rev}.
var scriptHead = readScript(`return {0, head()}`)

// scriptGet: ARGV keys. Their metadata and values, the revision and the
// server's time, for Get and GetMany on a Redis out of memory (which
// refuses the commands of a transaction, reads included). Reply {0, rev,
// metas, values, now}.
var scriptGet = readScript(`
local ms = redis.call('HMGET', K_META, unpack(ARGV))
local vs = redis.call('HMGET', K_VAL, unpack(ARGV))
return {0, head(), ms, vs, num(now_ms())}
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
  n = redis.call('ZCARD', K_IDX) - redis.call('ZCOUNT', K_EXP, '-inf', now)
else
  n = redis.call('ZLEXCOUNT', K_IDX, ARGV[1], ARGV[2])
  local dead = redis.call('ZRANGE', K_EXP, '-inf', now, 'BYSCORE')
  for i = 1, #dead do
    if string.sub(dead[i], 1, #p) == p then n = n - 1 end
  end
end
return {0, rev, n}
`)

// scriptStats: the index's count and the running byte total, less the
// expired keys not yet removed, and the history's base. Reply {0, rev,
// keys, bytes, base}.
var scriptStats = readScript(luaBase + `
local rev = head()
local now = now_ms()
local n = redis.call('ZCARD', K_IDX)
local bytes = tonumber(redis.call('GET', K_BYTES) or '0')
local dead = redis.call('ZRANGE', K_EXP, '-inf', now, 'BYSCORE')
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
return {0, rev, n, num(bytes), base()}
`)

// scriptHistory: ARGV from, max entries, max bytes. The stream entries
// (chunks) from the one holding revision from on, up to the counts.
// Reply {0, rev, base, entries}.
var scriptHistory = readScript(luaBase + `
local rev = head()
local want, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local out, size = {}, 0
local lo = ARGV[1] .. '-0'
while #out < want and size < budget do
  local n = math.min(4, want - #out)
  local part = redis.call('XRANGE', K_EV, lo, '+', 'COUNT', n)
  for i = 1, #part do
    out[#out + 1] = part[i]
    local f = part[i][2]
    if f[3] == 'b' then size = size + #f[4] end
    for j = 6, #f, 2 do size = size + #f[j] end
  end
  if #part < n then break end
  lo = '(' .. part[#part][1]
end
return {0, rev, base(), out}
`)
