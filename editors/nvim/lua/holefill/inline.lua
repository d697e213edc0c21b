-- Ghost text for Neovim 0.11: asks the server for textDocument/inlineCompletion on typing
-- pauses (debounced; a newer request cancels the pending one with client:cancel_request) and
-- shows the drafts with extmarks. Typing what the ghost text shows keeps it (no new request);
-- partial accepts are the same thing: inserted text that the drafts start with.

local config = require("holefill.config")
local ghost = require("holefill.ghost")

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.ns = api.nvim_create_namespace("holefill.ghost")
M.method = "textDocument/inlineCompletion"

--- Per-buffer state.
---@class holefill.InlineState
---@field client_id integer
---@field timer? uv.uv_timer_t
---@field pending? {client_id: integer, id: integer}
---@field drafts? string[] drafts as they were at the anchor
---@field index integer current draft
---@field anchor? integer[] {row, col} (0-based, bytes) where the drafts start
---@field shown? string what the ghost text shows now (the current draft's remainder)
---@field extmark? integer
---@field count_extmark? integer
---@field suppress_tick? integer changedtick after which no new request is made
---@field requests integer requests sent (for tests)
---@field cancelled integer requests cancelled as stale (for tests)

---@type table<integer, holefill.InlineState>
M.buffers = {}

--- The last response per buffer: {params, result, drafts}, for tests and :checkhealth.
---@type table<integer, table>
M.last_response = {}

local function state(bufnr)
  return M.buffers[bufnr]
end

local function get_client(bufnr)
  local s = state(bufnr)
  if not s then
    return nil
  end
  local client = vim.lsp.get_client_by_id(s.client_id)
  if client and not client:is_stopped() then
    return client
  end
  return nil
end

local function win_for(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) == bufnr then
    return win
  end
  local w = vim.fn.bufwinid(bufnr)
  return w ~= -1 and w or nil
end

local function cursor(bufnr)
  local win = win_for(bufnr)
  if not win then
    return nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return { pos[1] - 1, pos[2] }
end

local function in_insert()
  return api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function hide(bufnr)
  local s = state(bufnr)
  if s then
    s.extmark, s.count_extmark, s.shown = nil, nil, nil
  end
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Forget the drafts and hide them.
function M.clear(bufnr)
  local s = state(bufnr)
  if s then
    s.drafts, s.anchor, s.index = nil, nil, 1
  end
  hide(bufnr)
end

function M.cancel_pending(bufnr)
  local s = state(bufnr)
  if not (s and s.pending) then
    return
  end
  local client = vim.lsp.get_client_by_id(s.pending.client_id)
  if client then
    client:cancel_request(s.pending.id)
  end
  s.pending = nil
  s.cancelled = s.cancelled + 1
end

local function stop_timer(s)
  if s.timer then
    s.timer:stop()
    if not s.timer:is_closing() then
      s.timer:close()
    end
    s.timer = nil
  end
end

--- Whether ghost text is shown in the buffer.
function M.visible(bufnr)
  local s = state(bufnr or api.nvim_get_current_buf())
  return s ~= nil and s.shown ~= nil
end

local function render(bufnr, text, index, count)
  local s = state(bufnr)
  hide(bufnr)
  local pos = cursor(bufnr)
  if not pos then
    return
  end
  local line = api.nvim_buf_get_lines(bufnr, pos[1], pos[1] + 1, false)[1] or ""
  local o = config.options.inline
  local opts = ghost.extmark_opts(text, line:sub(pos[2] + 1), o.hl_group)
  opts.priority = 200
  s.extmark = api.nvim_buf_set_extmark(bufnr, M.ns, pos[1], pos[2], opts)
  if o.show_count and count > 1 then
    s.count_extmark = api.nvim_buf_set_extmark(bufnr, M.ns, pos[1], 0, {
      virt_text = { { (" (%d/%d)"):format(index, count), o.count_hl_group } },
      virt_text_pos = "eol",
      priority = 100,
    })
  end
  s.shown = text
end

--- The text between the anchor and the cursor; nil when the cursor is before the anchor or
--- the buffer no longer has the anchor.
local function typed_since_anchor(bufnr, s)
  local pos = cursor(bufnr)
  if not (pos and s.anchor) then
    return nil
  end
  local a = s.anchor
  if pos[1] < a[1] or (pos[1] == a[1] and pos[2] < a[2]) then
    return nil
  end
  local ok, lines = pcall(api.nvim_buf_get_text, bufnr, a[1], a[2], pos[1], pos[2], {})
  if not ok then
    return nil
  end
  return table.concat(lines, "\n")
end

--- Indices of the drafts that still apply after `typed` (non-empty remainder).
local function applicable(s, typed)
  local out = {}
  for i, d in ipairs(s.drafts or {}) do
    local r = ghost.advance(d, typed)
    if r and r ~= "" then
      out[#out + 1] = i
    end
  end
  return out
end

--- Re-show the drafts after the buffer or cursor changed: what was typed since the anchor is
--- taken off the drafts that start with it. Returns false when no draft applies any more.
function M.refresh(bufnr)
  local s = state(bufnr)
  if not (s and s.drafts) then
    return false
  end
  local typed = typed_since_anchor(bufnr, s)
  local live = typed and applicable(s, typed) or {}
  if #live == 0 then
    M.clear(bufnr)
    return false
  end
  local at = nil
  for k, i in ipairs(live) do
    if i == s.index then
      at = k
    end
  end
  if not at then
    at, s.index = 1, live[1]
  end
  render(bufnr, ghost.advance(s.drafts[s.index], typed), at, #live)
  return true
end

local function to_byte(line, encoding, character)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  if ok and col then
    return col
  end
  ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  return ok and col or #line
end

--- Inline items (LSP) -> {text, start, finish} in bytes.
local function normalize(bufnr, client, result, pos)
  local raw = result and (result.items or result) or {}
  local items = {}
  for _, item in ipairs(raw) do
    if item.insertText ~= nil then
      local start, finish = { pos[1], pos[2] }, { pos[1], pos[2] }
      if item.range then
        local function conv(p)
          local line = api.nvim_buf_get_lines(bufnr, p.line, p.line + 1, false)[1] or ""
          return { p.line, to_byte(line, client.offset_encoding, p.character) }
        end
        start, finish = conv(item.range.start), conv(item.range["end"])
      end
      items[#items + 1] = { text = ghost.plain(item.insertText), start = start, finish = finish }
    end
  end
  return items
end

local function formatting_options(bufnr)
  local sw = vim.bo[bufnr].shiftwidth
  return {
    tabSize = sw > 0 and sw or vim.bo[bufnr].tabstop,
    insertSpaces = vim.bo[bufnr].expandtab,
  }
end

--- Ask for drafts at the cursor. `invoked`: explicitly asked for (trigger key), else automatic.
function M.request(bufnr, invoked)
  local s = state(bufnr)
  if not s then
    return
  end
  M.cancel_pending(bufnr)
  local client = get_client(bufnr)
  local win = win_for(bufnr)
  if not (client and win) then
    return
  end
  if not config.inline_enabled(vim.bo[bufnr].filetype) then
    return
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = invoked and 1 or 2 }
  params.formattingOptions = formatting_options(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local pos = cursor(bufnr)
  local ok, id
  ok, id = client:request(M.method, params, function(err, result)
    if not (s.pending and s.pending.id == id) then
      return -- cancelled or superseded
    end
    s.pending = nil
    if err then
      if err.code ~= -32800 then -- RequestCancelled
        vim.lsp.log.warn("holefill: inlineCompletion failed", err)
      end
      return
    end
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      s.cancelled = s.cancelled + 1
      return
    end
    local now = cursor(bufnr)
    if not (now and now[1] == pos[1] and now[2] == pos[2]) or not in_insert() then
      s.cancelled = s.cancelled + 1
      return
    end
    local line = api.nvim_buf_get_lines(bufnr, pos[1], pos[1] + 1, false)[1] or ""
    local drafts = ghost.ghost_texts(normalize(bufnr, client, result, pos), line, pos[1], pos[2])
    M.last_response[bufnr] = { params = params, result = result, drafts = drafts }
    if #drafts == 0 then
      M.clear(bufnr)
      return
    end
    s.drafts, s.index, s.anchor = drafts, 1, { pos[1], pos[2] }
    render(bufnr, drafts[1], 1, #drafts)
    pcall(api.nvim_exec_autocmds, "User", {
      pattern = "HolefillSuggestion",
      modeline = false,
      data = { bufnr = bufnr, drafts = drafts },
    })
  end, bufnr)
  if ok and id then
    s.pending = { client_id = client.id, id = id }
    s.requests = s.requests + 1
  end
end

--- Debounced automatic request.
function M.schedule(bufnr)
  local s = state(bufnr)
  if not s or not config.options.inline.auto_trigger then
    return
  end
  stop_timer(s)
  M.cancel_pending(bufnr)
  s.timer = uv.new_timer()
  s.timer:start(
    config.options.inline.debounce_ms,
    0,
    vim.schedule_wrap(function()
      stop_timer(s)
      if state(bufnr) == s and api.nvim_get_current_buf() == bufnr and in_insert() then
        M.request(bufnr, false)
      end
    end)
  )
end

local function insert_at_cursor(bufnr, text)
  local win = win_for(bufnr)
  local pos = cursor(bufnr)
  if not (win and pos) then
    return
  end
  local lines = ghost.lines(text)
  api.nvim_buf_set_text(bufnr, pos[1], pos[2], pos[1], pos[2], lines)
  local row = pos[1] + #lines - 1
  local col = (#lines == 1 and pos[2] or 0) + #lines[#lines]
  api.nvim_win_set_cursor(win, { row + 1, col })
end

--- Accept the whole suggestion ("all"), its next word or its next line. Returns false when no
--- suggestion is shown.
---@param kind? "all"|"word"|"line"
function M.accept(bufnr, kind)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = state(bufnr)
  if not (s and s.shown) then
    return false
  end
  kind = kind or "all"
  local text = s.shown
  local part = kind == "word" and ghost.next_word(text) or kind == "line" and ghost.next_line(text) or text
  M.cancel_pending(bufnr)
  insert_at_cursor(bufnr, part)
  if part == text then
    M.clear(bufnr)
    -- No new request for the text we just inserted; the next keystroke asks again.
    s.suppress_tick = api.nvim_buf_get_changedtick(bufnr)
  else
    M.refresh(bufnr)
  end
  return true
end

--- Show the next (step 1) or previous (step -1) draft. A no-op with one draft.
function M.cycle(bufnr, step)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = state(bufnr)
  if not (s and s.shown and s.drafts) then
    return false
  end
  local typed = typed_since_anchor(bufnr, s) or ""
  local live = applicable(s, typed)
  if #live <= 1 then
    return true
  end
  local at = 1
  for k, i in ipairs(live) do
    if i == s.index then
      at = k
    end
  end
  s.index = live[ghost.cycle(at, #live, step)]
  M.refresh(bufnr)
  return true
end

function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = state(bufnr)
  if not s then
    return false
  end
  local was = s.shown ~= nil
  if s.timer then
    stop_timer(s)
  end
  M.cancel_pending(bufnr)
  M.clear(bufnr)
  s.suppress_tick = api.nvim_buf_get_changedtick(bufnr)
  return was
end

function M.trigger(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  M.request(bufnr, true)
  return true
end

--- The shown draft and the drafts, for tests: {text, index, count, extmark details}.
function M.current(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = state(bufnr)
  if not (s and s.shown and s.extmark) then
    return nil
  end
  local mark = api.nvim_buf_get_extmark_by_id(bufnr, M.ns, s.extmark, { details = true })
  return {
    text = s.shown,
    index = s.index,
    drafts = s.drafts,
    row = mark[1],
    col = mark[2],
    details = mark[3],
    shown_text = mark[3] and ghost.shown_text(mark[3]) or nil,
  }
end

--- Show drafts at the cursor as if the server had sent them (for tests).
function M._show(bufnr, drafts, client_id)
  if not M.buffers[bufnr] then
    M.attach(bufnr, client_id or -1)
  end
  local s = state(bufnr)
  local pos = cursor(bufnr)
  s.drafts, s.index, s.anchor = drafts, 1, { pos[1], pos[2] }
  render(bufnr, drafts[1], 1, #drafts)
end

local function on_text_changed(bufnr)
  local s = state(bufnr)
  if not s then
    return
  end
  if s.suppress_tick and api.nvim_buf_get_changedtick(bufnr) == s.suppress_tick then
    return
  end
  s.suppress_tick = nil
  if s.drafts and M.refresh(bufnr) then
    return -- typed what the ghost text showed: keep it, no request
  end
  M.schedule(bufnr)
end

function M.attach(bufnr, client_id)
  if M.buffers[bufnr] then
    M.buffers[bufnr].client_id = client_id
    return
  end
  M.buffers[bufnr] = { client_id = client_id, index = 1, requests = 0, cancelled = 0 }
  local group = api.nvim_create_augroup("holefill.inline." .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_text_changed(bufnr)
    end,
  })
  api.nvim_create_autocmd("InsertEnter", {
    group = group,
    buffer = bufnr,
    callback = function()
      M.schedule(bufnr)
    end,
  })
  api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = state(bufnr)
      if s and s.drafts then
        -- Moving away from the ghost text hides it (typing through it is handled above).
        local typed = typed_since_anchor(bufnr, s)
        if typed == nil or not ghost.advance(s.drafts[s.index] or "", typed) then
          M.clear(bufnr)
        end
      end
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = state(bufnr)
      if s then
        stop_timer(s)
      end
      M.cancel_pending(bufnr)
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd("BufUnload", {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  local s = M.buffers[bufnr]
  if not s then
    return
  end
  stop_timer(s)
  M.cancel_pending(bufnr)
  M.clear(bufnr)
  M.buffers[bufnr] = nil
  M.last_response[bufnr] = nil
  pcall(api.nvim_del_augroup_by_name, "holefill.inline." .. bufnr)
end

return M
