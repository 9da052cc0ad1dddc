-- A record is kept twice: as its JSON text under rec:<id> (one GET or MGET to read it) and as
-- a hash under rec-parts:<id> that the scripts merge into. The hash holds every data key as
-- JSON text (field = the key's JSON, so it starts with a quote) next to the bookkeeping fields
-- head, state, version and updated_at. Rendering joins those texts, so Lua never decodes JSON
-- (cjson would turn [] into {} and round floats to 14 digits).
local function render(parts_key)
  local flat = redis.call('HGETALL', parts_key)
  local meta, data = {}, {}
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, 1) == '"' then
      data[#data + 1] = flat[i] .. ':' .. flat[i + 1]
    else
      meta[flat[i]] = flat[i + 1]
    end
  end
  return meta.head .. ',"state":' .. meta.state .. ',"version":' .. meta.version
    .. ',"updated_at":' .. meta.updated_at .. ',"data":{' .. table.concat(data, ',') .. '}}'
end
