-- A handler that reads no field of r: its request goes back to the pool
-- (spec/ngx_spec.lua checks that the next requests still see their own).
return function(w) w:write("untouched\n") end
