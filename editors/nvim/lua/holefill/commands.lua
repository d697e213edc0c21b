-- :HolefillResolve (the server's "Resolve all conflicts" code action, else `holefill resolve`)
-- and :HolefillContext (`holefill context`, in a float). CLI runs are asynchronous (vim.system).

local config = require("holefill.config")

local api = vim.api

local M = {}

M.timeout_ms = 120000

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO, { title = "holefill" })
end

local function env()
  local e = config.options.cmd_env
  return (e and next(e)) and e or nil
end

--- Explain a failed run (exit code, stderr) or a spawn error.
---@param cmd string[]
---@param sub string
---@param res {code: integer, stderr?: string}
---@param spawn_err? string
function M.explain(cmd, sub, res, spawn_err)
  if spawn_err then
    if spawn_err:match("ENOENT") then
      return ("holefill: `%s` was not found; install holefill or set `python`/`cmd` in setup()"):format(cmd[1])
    end
    return "holefill: could not run " .. table.concat(cmd, " ") .. ": " .. spawn_err
  end
  local stderr = res.stderr or ""
  if stderr:find("invalid choice: '" .. sub .. "'", 1, true) then
    return ("holefill: this holefill has no `%s` command yet; update holefill"):format(sub)
  end
  if stderr:find("No module named holefill", 1, true) then
    return ("holefill: `%s` has no holefill installed"):format(cmd[1])
  end
  local last = ""
  for line in stderr:gmatch("[^\n]+") do
    last = line
  end
  return ("holefill %s failed (exit %d)%s"):format(sub, res.code, last ~= "" and (": " .. last) or "")
end

--- Run a CLI command; `on_done(result)` on success (in the main loop), errors are notified.
--- `ok_codes` lists exit codes that are not failures (default {0}).
function M.run(args, sub, cwd, on_done, ok_codes)
  local cmd = config.cli_base()
  vim.list_extend(cmd, args)
  local ok, err = pcall(vim.system, cmd, {
    text = true,
    cwd = cwd,
    env = env(),
    timeout = M.timeout_ms,
  }, vim.schedule_wrap(function(res)
    if not vim.tbl_contains(ok_codes or { 0 }, res.code) then
      notify(M.explain(cmd, sub, res), vim.log.levels.ERROR)
      if M.on_error then
        M.on_error(sub, res)
      end
      return
    end
    on_done(res)
  end))
  if not ok then
    notify(M.explain(cmd, sub, { code = -1 }, tostring(err)), vim.log.levels.ERROR)
    if M.on_error then
      M.on_error(sub, { code = -1, stderr = tostring(err) })
    end
  end
end

local function root_of(path)
  local found = vim.fs.root(path, config.options.root_markers or { ".git" })
  return found or vim.fs.dirname(path)
end

--- Hunks of `holefill resolve --json` output, whatever the nesting; nil if it is not JSON.
function M.parse_resolve(stdout)
  local text = vim.trim(stdout or "")
  if text == "" then
    return {}
  end
  local ok, data = pcall(vim.json.decode, text, { luanil = { object = true, array = true } })
  if not ok then
    data = {}
    for line in text:gmatch("[^\n]+") do
      local ok2, item = pcall(vim.json.decode, line, { luanil = { object = true, array = true } })
      if not ok2 then
        return nil
      end
      data[#data + 1] = item
    end
  end
  local hunks = {}
  local function walk(v)
    if type(v) ~= "table" then
      return
    end
    if type(v.status) == "string" and (v.hunk ~= nil or v.pattern ~= nil) then
      hunks[#hunks + 1] = v
      return
    end
    for _, child in pairs(v) do
      walk(child)
    end
  end
  walk(data)
  return hunks
end

function M.summarize(hunks)
  if #hunks == 0 then
    return "holefill: no merge conflicts in this file"
  end
  local resolved = 0
  for _, h in ipairs(hunks) do
    if h.status == "resolved" then
      resolved = resolved + 1
    end
  end
  local msg = ("holefill: resolved %d of %d conflict%s"):format(resolved, #hunks, #hunks == 1 and "" or "s")
  if resolved < #hunks then
    msg = msg .. ("; %d left for you (the resolver abstained)"):format(#hunks - resolved)
  end
  return msg
end

local function count_conflicts(bufnr)
  local n = 0
  for _, line in ipairs(api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
    if line:match("^<<<<<<<") then
      n = n + 1
    end
  end
  return n
end

local function finish(on_done, msg, level)
  notify(msg, level)
  if on_done then
    on_done(msg)
  end
end

--- Resolve with `holefill resolve FILE --write --json` and reload the buffer. A modified
--- buffer must be written first (`write_first` does it).
function M.resolve_cli(bufnr, write_first, on_done)
  bufnr = bufnr or api.nvim_get_current_buf()
  local path = api.nvim_buf_get_name(bufnr)
  if path == "" or vim.bo[bufnr].buftype ~= "" then
    return finish(on_done, "holefill: the buffer has no file to resolve", vim.log.levels.WARN)
  end
  if vim.bo[bufnr].modified then
    if not write_first then
      return finish(on_done, "holefill: write the buffer first (:w), or use :HolefillResolve!", vim.log.levels.WARN)
    end
    api.nvim_buf_call(bufnr, function()
      vim.cmd("silent write")
    end)
  end
  -- Exit 1 means "conflicts remain" (the resolver abstained on some): still a result.
  M.run({ "resolve", path, "--write", "--json" }, "resolve", root_of(path), function(res)
    local hunks = M.parse_resolve(res.stdout)
    if hunks == nil or (res.code ~= 0 and vim.trim(res.stdout or "") == "") then
      return finish(on_done, M.explain(config.cli_base(), "resolve", res), vim.log.levels.ERROR)
    end
    if api.nvim_buf_is_valid(bufnr) and not vim.bo[bufnr].modified then
      api.nvim_buf_call(bufnr, function()
        local view = vim.fn.winsaveview()
        vim.cmd("silent edit!")
        vim.fn.winrestview(view)
      end)
    end
    finish(on_done, M.summarize(hunks))
  end, { 0, 1 })
end

--- Resolve with the server's "Resolve all conflicts" code action: works on unsaved text and is
--- one undo step. Returns false when no holefill client offers code actions for the buffer.
function M.resolve_code_action(bufnr, on_done)
  bufnr = bufnr or api.nvim_get_current_buf()
  local client = nil
  for _, c in ipairs(vim.lsp.get_clients({ name = "holefill", bufnr = bufnr })) do
    if c:supports_method("textDocument/codeAction", bufnr) then
      client = c
    end
  end
  if not client then
    return false
  end
  local before = count_conflicts(bufnr)
  if before == 0 then
    finish(on_done, "holefill: no merge conflicts in this buffer")
    return true
  end
  local last = api.nvim_buf_line_count(bufnr)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = { start = { line = 0, character = 0 }, ["end"] = { line = last, character = 0 } },
    context = { diagnostics = {}, only = { "quickfix" }, triggerKind = 1 },
  }
  client:request("textDocument/codeAction", params, function(err, actions)
    if err then
      return finish(on_done, "holefill: code action failed: " .. tostring(err.message), vim.log.levels.ERROR)
    end
    local all = nil
    for _, action in ipairs(actions or {}) do
      if type(action.title) == "string" and action.title:lower():match("^resolve all conflicts") then
        all = action
      end
    end
    if not (all and all.edit) then
      return finish(on_done, ("holefill: resolved 0 of %d conflict%s; %d left for you (the resolver abstained)"):format(
        before, before == 1 and "" or "s", before), vim.log.levels.WARN)
    end
    vim.lsp.util.apply_workspace_edit(all.edit, client.offset_encoding)
    local after = count_conflicts(bufnr)
    local msg = ("holefill: resolved %d of %d conflict%s"):format(before - after, before, before == 1 and "" or "s")
    if after > 0 then
      msg = msg .. ("; %d left for you (the resolver abstained)"):format(after)
    end
    finish(on_done, msg)
  end, bufnr)
  return true
end

--- :HolefillResolve[!] — the server's code action when it offers one, else the CLI
--- (`!`: write a modified buffer first).
function M.resolve(bufnr, bang, on_done)
  bufnr = bufnr or api.nvim_get_current_buf()
  if not M.resolve_code_action(bufnr, on_done) then
    M.resolve_cli(bufnr, bang, on_done)
  end
end

--- 1-based line and character column of the cursor, as the CLI counts them.
function M.cursor_location(bufnr, win)
  local pos = api.nvim_win_get_cursor(win)
  local line = api.nvim_buf_get_lines(bufnr, pos[1] - 1, pos[1], false)[1] or ""
  local chars = vim.str_utfindex(line, "utf-32", math.min(pos[2], #line), false)
  return pos[1], chars + 1
end

--- Show text in a centered float; q or <Esc> closes it.
function M.float(lines, title)
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].filetype = "holefill-context"
  local width = math.min(math.max(60, math.floor(vim.o.columns * 0.8)), vim.o.columns - 4)
  local height = math.min(#lines + 1, math.max(5, math.floor(vim.o.lines * 0.7)))
  local win = api.nvim_open_win(buf, true, {
    relative = "editor",
    width = math.max(width, 20),
    height = math.max(height, 3),
    row = math.floor((vim.o.lines - height) / 2),
    col = math.floor((vim.o.columns - width) / 2),
    border = "rounded",
    title = title,
    title_pos = "center",
    style = "minimal",
  })
  vim.wo[win].wrap = false
  for _, key in ipairs({ "q", "<Esc>" }) do
    vim.keymap.set("n", key, "<Cmd>close<CR>", { buffer = buf, nowait = true })
  end
  return win, buf
end

--- :HolefillContext — `holefill context FILE:LINE:COL` at the cursor, in a float. Unsaved
--- text goes through a temporary copy of the buffer.
function M.context(bufnr, on_done)
  bufnr = bufnr or api.nvim_get_current_buf()
  local win = api.nvim_get_current_win()
  local path = api.nvim_buf_get_name(bufnr)
  local line, col = M.cursor_location(bufnr, win)
  local file, tmpdir = path, nil
  if path == "" or vim.bo[bufnr].modified or vim.fn.filereadable(path) == 0 then
    tmpdir = vim.fn.tempname()
    vim.fn.mkdir(tmpdir, "p")
    file = vim.fs.joinpath(tmpdir, path ~= "" and vim.fs.basename(path) or "untitled.py")
    local lines = api.nvim_buf_get_lines(bufnr, 0, -1, false)
    vim.fn.writefile(lines, file)
  end
  local args = { "context", ("%s:%d:%d"):format(file, line, col) }
  local root = path ~= "" and root_of(path) or vim.fn.getcwd()
  vim.list_extend(args, { "--workspace", root })
  M.run(args, "context", root, function(res)
    if tmpdir then
      vim.fn.delete(tmpdir, "rf")
    end
    local out = vim.split(res.stdout or "", "\n", { plain = true })
    if out[#out] == "" then
      out[#out] = nil
    end
    local title = (" holefill context %s:%d:%d%s "):format(
      path ~= "" and vim.fn.fnamemodify(path, ":~:.") or "[No Name]",
      line,
      col,
      tmpdir and " (unsaved text)" or ""
    )
    local fwin, fbuf = M.float(out, title)
    if on_done then
      on_done(fwin, fbuf, out)
    end
  end)
  if tmpdir then
    -- Removed on success above; on failure, later.
    vim.defer_fn(function()
      vim.fn.delete(tmpdir, "rf")
    end, M.timeout_ms + 1000)
  end
end

return M
