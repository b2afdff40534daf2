-- wrk script: a ~1 KB OpenAI chat completion POST, the same for every request.
local content = string.rep("Summarize the following paragraph in one sentence please. ", 15)
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"' .. content .. '"}]}'
