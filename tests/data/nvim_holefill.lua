-- Drives a headless Neovim 0.11 against `holefill serve` (run with `nvim --clean -l`).
-- Environment: HOLEFILL_NVIM_FILE (a Python file to open), HOLEFILL_NVIM_SERVER (the server
-- command, JSON), HOLEFILL_NVIM_OUT (where the JSON results go), HOLEFILL_NVIM_TIMEOUT_MS.
-- It opens the file, cuts it after its last "return self." (an incremental didChange), puts the
-- cursor there, then shows the inline suggestion as ghost text (an inline extmark, as the 0.11
-- plugin does) and applies the model's completion item; it writes what the editor ends up with.

local out = assert(os.getenv("HOLEFILL_NVIM_OUT"))
local timeout = tonumber(os.getenv("HOLEFILL_NVIM_TIMEOUT_MS") or "120000")
local result = {}

local function main()
  local file = assert(os.getenv("HOLEFILL_NVIM_FILE"))
  local cmd = vim.json.decode(assert(os.getenv("HOLEFILL_NVIM_SERVER")))
  vim.cmd.edit(vim.fn.fnameescape(file))
  local bufnr = vim.api.nvim_get_current_buf()

  local load_end
  vim.api.nvim_create_autocmd("LspProgress", {
    callback = function(ev)
      local value = ev.data.params.value
      local token = tostring(ev.data.params.token)
      -- the model's progress, not the workspace index's
      if type(value) == "table" and value.kind == "end" and token:sub(1, 14) == "holefill/load/" then
        load_end = value.message or ""
      end
    end,
  })
  local client_id = assert(vim.lsp.start({
    name = "holefill",
    cmd = cmd,
    root_dir = vim.fs.dirname(file),
    init_options = { maxNewTokens = 24 },
  }))
  local client = assert(vim.lsp.get_client_by_id(client_id))
  assert(vim.wait(timeout, function() return load_end ~= nil end, 100), "no model-load progress end")
  result.load = load_end
  assert(load_end:sub(1, 5) == "ready", "the model did not load: " .. load_end)
  result.offset_encoding = client.offset_encoding

  -- Cut the buffer after the last "return self." and put the cursor there.
  local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local row, col
  for i, line in ipairs(lines) do
    local s, e = line:find("return self.", 1, true)
    if s then
      row, col = i, e
    end
  end
  assert(row, "no 'return self.' in the file")
  vim.api.nvim_buf_set_lines(bufnr, row, -1, false, {})
  vim.api.nvim_buf_set_text(bufnr, row - 1, col, row - 1, #lines[row], {})
  vim.api.nvim_win_set_cursor(0, { row, col })
  -- The cursor as in insert mode, after the last character (normal mode would clamp it onto
  -- the "."); the line is ASCII, so the byte column is the position in any encoding.
  local function position_params()
    return {
      textDocument = vim.lsp.util.make_text_document_params(bufnr),
      position = { line = row - 1, character = col },
    }
  end

  -- Inline completion, shown as ghost text.
  local params = position_params()
  params.context = { triggerKind = 1 }
  local response = client:request_sync("textDocument/inlineCompletion", params, timeout, bufnr)
  assert(response and not response.err, vim.inspect(response))
  local items = response.result and (response.result.items or response.result) or {}
  assert(items[1], "no inline item")
  local ns = vim.api.nvim_create_namespace("holefill-test")
  local first_line = vim.split(items[1].insertText, "\n", { plain = true })[1]
  vim.api.nvim_buf_set_extmark(bufnr, ns, row - 1, col, {
    virt_text = { { first_line, "Comment" } },
    virt_text_pos = "inline",
  })
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  result.ghost_text = marks[1][4].virt_text[1][1]
  result.inline = items[1].insertText

  -- Completion (Neovim 0.11 has no inline completion, so the model's item comes first).
  params = position_params()
  response = client:request_sync("textDocument/completion", params, timeout, bufnr)
  assert(response and not response.err, vim.inspect(response))
  local completion = response.result.items or response.result
  result.labels = vim.tbl_map(function(item) return item.label end, completion)
  local model = completion[1]
  result.completion = model.insertText
  vim.lsp.util.apply_text_edits({ model.textEdit }, bufnr, client.offset_encoding)
  result.line_after_accept = vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1]
  result.line_before = lines[row]:sub(1, col)
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  result.error = tostring(err)
end
local handle = assert(io.open(out, "w"))
handle:write(vim.json.encode(result))
handle:close()
for _, client in ipairs(vim.lsp.get_clients()) do
  client:stop()
end
vim.wait(5000, function() return #vim.lsp.get_clients() == 0 end, 50)
os.exit(ok and 0 or 1)
