-- End-to-end test of the plugin in a real headless Neovim attached to the real `holefill serve`.
-- Driven by tests/test_editor_nvim.py:
--   nvim --headless --clean --cmd "set rtp^=editors/nvim" -c "luafile editors/nvim/tests/e2e.lua"
-- Environment: HOLEFILL_TEST_PYTHON (interpreter with holefill), HOLEFILL_TEST_FILE (Python file
-- to edit), HOLEFILL_TEST_OUT (JSON results), HOLEFILL_TEST_CONFLICT (file with conflict markers,
-- or empty to skip resolve), HOLEFILL_TEST_CONFLICT_CLI (another one, resolved through the CLI
-- route), HOLEFILL_TEST_CONTEXT ("1" to run :HolefillContext),
-- HOLEFILL_TEST_TIMEOUT (seconds for the whole run).
--
-- Keys are fed with nvim_feedkeys(..., "t") so that they go through the main loop as typed
-- input: insert mode, TextChangedI, the debounce timer and the mappings all run for real.

local env = vim.env
local out_path = assert(env.HOLEFILL_TEST_OUT, "HOLEFILL_TEST_OUT")
local results = { steps = {}, notifications = {}, errors = {} }
local done = false

local function write_results()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(results))
  f:close()
end

local function finish()
  if done then
    return
  end
  done = true
  write_results()
  vim.schedule(function()
    for _, client in ipairs(vim.lsp.get_clients({ name = "holefill" })) do
      client:stop(true)
    end
    vim.cmd("qa!")
  end)
end

-- Whole-run timeout: write what we have and quit.
vim.defer_fn(function()
  if not done then
    table.insert(results.errors, "timeout of the whole run")
    finish()
  end
end, (tonumber(env.HOLEFILL_TEST_TIMEOUT) or 300) * 1000)

local original_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(results.notifications, { msg = tostring(msg), level = level or vim.log.levels.INFO })
  return original_notify(msg, level, opts)
end

local co

local function sleep(ms)
  vim.defer_fn(function()
    assert(coroutine.resume(co))
  end, ms)
  coroutine.yield()
end

--- Poll `cond` every 25 ms for up to `ms`; its last value.
local function wait_for(ms, cond)
  local deadline = vim.uv.now() + ms
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      return nil
    end
    sleep(25)
  end
end

local function feed(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), "mt", false)
end

local function lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function step(name, fn)
  local t0 = vim.uv.hrtime()
  local ok, err = xpcall(fn, debug.traceback)
  local rec = results.steps[name] or {}
  rec.ok = ok
  rec.seconds = (vim.uv.hrtime() - t0) / 1e9
  if not ok then
    rec.error = tostring(err)
  end
  results.steps[name] = rec
  write_results()
  return ok
end

local function record(name, values)
  results.steps[name] = vim.tbl_extend("force", results.steps[name] or {}, values)
end

local holefill, inline
local buf

local function main()
  step("setup", function()
    holefill = require("holefill")
    holefill.setup({
      python = assert(env.HOLEFILL_TEST_PYTHON),
      settings = { maxNewTokens = 24 },
      inline = { debounce_ms = 60 },
    })
    inline = require("holefill.inline")
    record("setup", { mode = holefill.mode(), version = tostring(vim.version()) })
  end)

  local attached = step("attach", function()
    vim.cmd.edit(vim.fn.fnameescape(assert(env.HOLEFILL_TEST_FILE)))
    buf = vim.api.nvim_get_current_buf()
    -- Deterministic typing: no automatic indentation.
    vim.bo[buf].autoindent = false
    vim.bo[buf].indentexpr = ""
    vim.bo[buf].smartindent = false
    record("attach", { filetype = vim.bo[buf].filetype })
    local client = wait_for(60000, function()
      return holefill.clients(buf)[1]
    end)
    assert(client, "no holefill client attached")
    record("attach", {
      offset_encoding = client.offset_encoding,
      inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil,
    })
    local model = wait_for(240000, function()
      local m = holefill.model[client.id]
      return m and m.state ~= "loading" and m
    end)
    assert(model, "the model did not finish loading")
    record("attach", { model_state = model.state, model_message = model.message })
    assert(model.state == "ready", "model " .. tostring(model.message))
  end)
  if not attached then
    return finish()
  end

  step("suggest", function()
    local before = #lines(buf)
    feed("Go        return ")
    local cur = wait_for(90000, function()
      return inline.current(buf)
    end)
    if not cur then
      -- The automatic request may have been answered with nothing: ask explicitly once.
      feed("<M-\\>")
      cur = wait_for(60000, function()
        return inline.current(buf)
      end)
    end
    assert(cur, "no ghost text appeared")
    local resp = inline.last_response[buf]
    record("suggest", {
      mode = vim.api.nvim_get_mode().mode,
      line_before = lines(buf)[before + 1],
      cursor = vim.api.nvim_win_get_cursor(0),
      ghost = cur.shown_text,
      extmark_row = cur.row,
      extmark_col = cur.col,
      virt_text_pos = cur.details.virt_text_pos,
      drafts = resp.drafts,
      server_items = resp.result and (resp.result.items or resp.result) or {},
      requests = inline.buffers[buf].requests,
      cancelled = inline.buffers[buf].cancelled,
    })
  end)

  step("accept", function()
    local row = vim.api.nvim_win_get_cursor(0)[1]
    local before = lines(buf)[row]
    local ghost = inline.current(buf).shown_text
    feed("<Tab>")
    assert(wait_for(5000, function()
      return lines(buf)[row] ~= before
    end), "the buffer did not change")
    sleep(50)
    local text = table.concat(lines(buf), "\n")
    record("accept", {
      before = before,
      ghost = ghost,
      line = lines(buf)[row],
      buffer_tail = vim.list_slice(lines(buf), row, row + select(2, ghost:gsub("\n", ""))),
      cursor = vim.api.nvim_win_get_cursor(0),
      shown_after = inline.current(buf) and inline.current(buf).shown_text or vim.NIL,
      contains = text:find(before .. ghost, 1, true) ~= nil,
    })
  end)

  step("cycle", function()
    feed("<Esc>Go    def names(self) -> list[str]:<CR>        return ")
    local cur = wait_for(90000, function()
      return inline.current(buf)
    end)
    assert(cur, "no ghost text for the second line")
    local drafts = vim.deepcopy(cur.drafts)
    local first = cur.shown_text
    local errmsg_before = vim.v.errmsg
    feed("<M-]>")
    sleep(150)
    local after = inline.current(buf)
    record("cycle", {
      drafts = drafts,
      first = first,
      index_after = after and after.index or vim.NIL,
      shown_after = after and after.shown_text or vim.NIL,
      errmsg = vim.v.errmsg ~= errmsg_before and vim.v.errmsg or "",
    })
    feed("<M-[>")
    sleep(150)
    record("cycle", { index_back = inline.current(buf) and inline.current(buf).index or vim.NIL })
  end)

  step("accept_word", function()
    local cur = inline.current(buf)
    assert(cur, "no ghost text to accept a word of")
    local row = vim.api.nvim_win_get_cursor(0)[1]
    local before = lines(buf)[row]
    local shown = cur.shown_text
    feed("<M-Right>")
    assert(wait_for(5000, function()
      return lines(buf)[row] ~= before
    end), "accept word did not change the buffer")
    sleep(50)
    local now = inline.current(buf)
    record("accept_word", {
      before = before,
      shown = shown,
      line = lines(buf)[row],
      remaining = now and now.shown_text or vim.NIL,
    })
  end)

  step("dismiss", function()
    local had = inline.current(buf) ~= nil
    feed("<C-]>")
    sleep(100)
    record("dismiss", { had = had, after = inline.current(buf) ~= nil })
  end)

  step("cancel", function()
    local s = inline.buffers[buf]
    local requests, cancelled = s.requests, s.cancelled
    feed("<Esc>Go        count = ")
    -- Past the debounce (60 ms): a request is in flight when the next keys arrive.
    assert(wait_for(5000, function()
      return s.requests > requests
    end), "no request after typing")
    local answered_first = inline.last_response[buf] ~= nil
      and inline.last_response[buf].params.position.character == #"        count = "
    feed("len(")
    local cur = wait_for(90000, function()
      return inline.current(buf)
    end)
    local row = vim.api.nvim_win_get_cursor(0)[1]
    record("cancel", {
      requests = s.requests - requests,
      cancelled = s.cancelled - cancelled,
      answered_first = answered_first,
      line = lines(buf)[row],
      ghost = cur and cur.shown_text or vim.NIL,
      response_position = inline.last_response[buf] and inline.last_response[buf].params.position or vim.NIL,
      cursor = vim.api.nvim_win_get_cursor(0),
    })
    feed("<C-]>")
  end)

  if env.HOLEFILL_TEST_CONTEXT == "1" then
    step("context", function()
      feed("<Esc>")
      sleep(50)
      vim.cmd("write")
      vim.api.nvim_win_set_cursor(0, { #lines(buf), 0 })
      vim.cmd("HolefillContext")
      local win = wait_for(120000, function()
        for _, w in ipairs(vim.api.nvim_list_wins()) do
          local b = vim.api.nvim_win_get_buf(w)
          if vim.bo[b].filetype == "holefill-context" then
            return w
          end
        end
      end)
      local failed = vim.tbl_filter(function(n)
        return n.msg:match("context")
      end, results.notifications)
      assert(win, "no context float" .. (failed[1] and (": " .. failed[1].msg) or ""))
      local cfg = vim.api.nvim_win_get_config(win)
      record("context", {
        relative = cfg.relative,
        lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false),
      })
      vim.api.nvim_win_close(win, true)
    end)
  end

  if env.HOLEFILL_TEST_CONFLICT and env.HOLEFILL_TEST_CONFLICT ~= "" then
    step("resolve", function()
      feed("<Esc>")
      sleep(50)
      vim.cmd.edit(vim.fn.fnameescape(env.HOLEFILL_TEST_CONFLICT))
      local cbuf = vim.api.nvim_get_current_buf()
      local client = wait_for(30000, function()
        return holefill.clients(cbuf)[1]
      end)
      assert(client, "no client for the conflict file")
      local code_action = client:supports_method("textDocument/codeAction", cbuf)
      -- The server marks conflict blocks with diagnostics (when it has merge support).
      local diagnostics = code_action and wait_for(20000, function()
        local d = vim.diagnostic.get(cbuf)
        return #d > 0 and d
      end) or {}
      local before = table.concat(lines(cbuf), "\n")
      local message
      require("holefill.commands").resolve(cbuf, false, function(msg)
        message = msg
      end)
      assert(wait_for(120000, function()
        return message
      end), "resolve did not finish")
      record("resolve", {
        code_action = code_action,
        diagnostics = vim.tbl_map(function(d)
          return { lnum = d.lnum, message = d.message, source = d.source }
        end, diagnostics),
        before = before,
        after = table.concat(lines(cbuf), "\n"),
        modified = vim.bo[cbuf].modified,
        message = message,
      })
    end)
  end

  if env.HOLEFILL_TEST_CONFLICT_CLI and env.HOLEFILL_TEST_CONFLICT_CLI ~= "" then
    -- The CLI route (servers without the code action): `holefill resolve --write`, then reload.
    step("resolve_cli", function()
      vim.cmd.edit(vim.fn.fnameescape(env.HOLEFILL_TEST_CONFLICT_CLI))
      local cbuf = vim.api.nvim_get_current_buf()
      local before = table.concat(lines(cbuf), "\n")
      local message
      require("holefill.commands").resolve_cli(cbuf, false, function(msg)
        message = msg
      end)
      assert(wait_for(120000, function()
        return message
      end), "resolve did not finish")
      record("resolve_cli", {
        before = before,
        after = table.concat(lines(cbuf), "\n"),
        modified = vim.bo[cbuf].modified,
        message = message,
      })
    end)
  end

  step("health", function()
    vim.cmd("checkhealth holefill")
    local hb = vim.api.nvim_get_current_buf()
    record("health", { lines = vim.api.nvim_buf_get_lines(hb, 0, -1, false) })
  end)

  finish()
end

co = coroutine.create(function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok then
    table.insert(results.errors, tostring(err))
    finish()
  end
end)
vim.schedule(function()
  assert(coroutine.resume(co))
end)
