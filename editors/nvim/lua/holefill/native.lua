-- Neovim 0.12+: the built-in vim.lsp.inline_completion renders and cycles the drafts; this
-- module only enables it for holefill's buffers and maps the same keys onto it (accepting a
-- word or a line goes through get({on_accept = ...})).

local ghost = require("holefill.ghost")

local api = vim.api

local M = {}

--- Whether this Neovim has the native inline completion (0.12+).
function M.available()
  local ic = vim.lsp.inline_completion
  return type(ic) == "table" and type(ic.enable) == "function" and type(ic.get) == "function"
end

function M.attach(bufnr, client_id)
  pcall(vim.lsp.inline_completion.enable, true, { bufnr = bufnr, client_id = client_id })
end

function M.detach(bufnr)
  pcall(vim.lsp.inline_completion.enable, false, { bufnr = bufnr })
end

--- The candidate's text after the cursor (its range may start before the cursor).
local function text_after_cursor(bufnr, item)
  local insert = item.insert_text or item.insertText or item.value or ""
  local text = ghost.plain(insert)
  local pos = api.nvim_win_get_cursor(0)
  local row, col = pos[1] - 1, pos[2]
  local r = item.range
  if r and r.start then
    local srow = r.start.row or r.start[1]
    local scol = r.start.col or r.start[2]
    if srow == row and scol and scol < col then
      local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
      text = ghost.advance(text, line:sub(scol + 1, col)) or text
    end
  end
  return text
end

local function insert(bufnr, text)
  local pos = api.nvim_win_get_cursor(0)
  local row, col = pos[1] - 1, pos[2]
  local lines = ghost.lines(text)
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
end

--- Accept all, a word or a line of the native candidate; false when none is shown.
function M.accept(bufnr, kind)
  if kind == "all" or kind == nil then
    return vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = text_after_cursor(bufnr, item)
      insert(bufnr, kind == "word" and ghost.next_word(text) or ghost.next_line(text))
    end,
  })
end

function M.cycle(bufnr, step)
  local ic = vim.lsp.inline_completion
  local select = ic.select or ic.jump
  if select then
    vim.schedule(function()
      pcall(select, { bufnr = bufnr, count = step })
    end)
  end
  return true
end

function M.dismiss(bufnr)
  -- No public "dismiss" in 0.12: switching off and on again clears the candidate.
  vim.schedule(function()
    pcall(vim.lsp.inline_completion.enable, false, { bufnr = bufnr })
    pcall(vim.lsp.inline_completion.enable, true, { bufnr = bufnr })
  end)
  return true
end

return M
