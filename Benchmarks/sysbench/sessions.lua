-- The MySQL store's own statements, prepared, for sysbench (the reference of issue 7):
--   SESS_OP=get  SELECT data FROM sessions WHERE sid = ? AND exp >= FROM_UNIXTIME(?)
--   SESS_OP=set  INSERT … ON DUPLICATE KEY UPDATE (the store's upsert), 1 KiB of data
-- Keys are those of `storage-bench --numeric-keys`: 1…SESS_KEYS zero-padded to 43 digits.
-- Run by Benchmarks/run.sh mysql; the tables are created by the store's migrate().
local keys = tonumber(os.getenv("SESS_KEYS") or "10000")
local op = os.getenv("SESS_OP") or "get"
local value = string.rep("v", tonumber(os.getenv("SESS_VALUE_BYTES") or "1024"))

function thread_init()
    drv = sysbench.sql.driver()
    con = drv:connect()
    if op == "get" then
        stmt = con:prepare("SELECT data FROM sessions WHERE sid = ? AND exp >= FROM_UNIXTIME(?)")
        sid = stmt:bind_create(sysbench.sql.type.VARCHAR, 43)
        now = stmt:bind_create(sysbench.sql.type.INT)
        stmt:bind_param(sid, now)
    else
        stmt = con:prepare("INSERT INTO sessions (sid, name, data, exp) VALUES (?, ?, ?, FROM_UNIXTIME(?)) "
            .. "ON DUPLICATE KEY UPDATE name = VALUES(name), data = VALUES(data), exp = VALUES(exp)")
        sid = stmt:bind_create(sysbench.sql.type.VARCHAR, 43)
        name = stmt:bind_create(sysbench.sql.type.VARCHAR, 64)
        data = stmt:bind_create(sysbench.sql.type.VARCHAR, #value)
        now = stmt:bind_create(sysbench.sql.type.INT)
        stmt:bind_param(sid, name, data, now)
        name:set("session")
        data:set(value)
    end
end

function event()
    sid:set(string.format("%043d", sysbench.rand.uniform(1, keys)))
    if op == "get" then now:set(os.time()) else now:set(os.time() + 3600) end
    local rs = stmt:execute()
    if rs ~= nil and rs.free ~= nil then rs:free() end
end

function thread_done()
    stmt:close()
    con:disconnect()
end
