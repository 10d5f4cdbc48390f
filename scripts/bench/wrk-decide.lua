-- POST TARGET (env, default /v1/decide) for a random visitor among VISITORS (env, default 10000): a mobile shopper's page view
-- with the User-Agent header and an IP the GeoIP database knows, four placements.
-- With TARGET=/static the same request bytes go to a constant JSON route: the HTTP-only baseline.
local target = os.getenv("TARGET") or "/v1/decide"
local visitors = tonumber(os.getenv("VISITORS") or "10000")
local ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
local head = '{"visitor_id":"v'
local tail = '","placements":["home_hero","app_banner","product_recs","promo_strip"],' ..
  '"context":{"url":"https://shop.example/?utm_source=newsletter","ip":"81.2.69.142",' ..
  '"attributes":{"page_type":"home","cart_value":0}}}'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = ua
-- Each wrk thread has its own Lua state: give each its own seed, or they would request the same visitors.
local threads = 0
function setup(thread)
  thread:set("seed", 42 + threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(seed or 42)
end
request = function()
  return wrk.format(nil, target, nil, head .. math.random(0, visitors - 1) .. tail)
end
