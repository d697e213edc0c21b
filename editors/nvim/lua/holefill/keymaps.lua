-- Insert-mode keys for the suggestion, buffer-local. A key that already has a mapping is left
-- alone (reported by :checkhealth holefill) unless `force_keymaps` is set; Neovim's own default
-- mappings (like <Tab> jumping in snippets) are chained: they run when no suggestion is shown.

local config = require("holefill.config")

local api = vim.api

local M = {}

--- Keys not mapped because of existing mappings, by buffer: { {action, lhs, existing desc} }.
---@type table<integer, table[]>
M.skipped = {}

local DESC = {
  accept = "holefill: accept the suggestion",
  accept_word = "holefill: accept the next word of the suggestion",
  accept_line = "holefill: accept the next line of the suggestion",
  next = "holefill: next draft",
  prev = "holefill: previous draft",
  dismiss = "holefill: dismiss the suggestion",
  trigger = "holefill: ask for a suggestion",
}

local function is_ours(m)
  return type(m.desc) == "string" and m.desc:sub(1, 9) == "holefill:"
end

--- Neovim's built-in default mappings carry descriptions starting with "vim." (0.11: <Tab> and
--- <S-Tab> for snippets, <C-S> for signature help).
local function is_builtin_default(m)
  return type(m.desc) == "string" and m.desc:match("^vim%.") ~= nil
end

--- What the key does when no suggestion is shown: the chained mapping, else the key itself.
local function fallback(lhs, chained)
  if not chained then
    return lhs
  end
  if chained.callback then
    local ok, keys = pcall(chained.callback)
    if chained.expr == 1 then
      return ok and type(keys) == "string" and keys or ""
    end
    return ""
  end
  if chained.rhs and chained.rhs ~= "" then
    if chained.expr == 1 then
      local ok, keys = pcall(vim.api.nvim_eval, chained.rhs)
      return ok and keys or ""
    end
    return chained.rhs
  end
  return lhs
end

--- Map the keys of `actions` ({name = function(bufnr) -> handled?, ...}) in a buffer.
--- `visible(bufnr)` says whether a suggestion is shown; `always` lists actions that run even
--- without a suggestion (trigger).
---@param bufnr integer
---@param actions table<string, fun(bufnr: integer): boolean>
---@param visible? fun(bufnr: integer): boolean
--- Without `visible`, actions run inside the <expr> mapping (they must not change the buffer
--- there: vim.lsp.inline_completion.get() schedules its edit) and the key falls back when an
--- action returns false.
function M.apply(bufnr, actions, visible)
  local keys = config.options.keymaps or {}
  M.skipped[bufnr] = {}
  for name, action in pairs(actions) do
    local lhs = keys[name]
    if type(lhs) == "string" and lhs ~= "" then
      local existing = api.nvim_buf_call(bufnr, function()
        return vim.fn.maparg(lhs, "i", false, true)
      end)
      local chained = nil
      local ok_to_map = true
      if existing and not vim.tbl_isempty(existing) and not is_ours(existing) then
        if is_builtin_default(existing) or config.options.force_keymaps then
          chained = is_builtin_default(existing) and existing or nil
        else
          ok_to_map = false
          table.insert(M.skipped[bufnr], { name, lhs, existing.desc or existing.rhs or "a mapping" })
        end
      end
      if ok_to_map then
        vim.keymap.set("i", lhs, function()
          if not visible then
            return action(bufnr) and "" or fallback(lhs, chained)
          end
          if name == "trigger" or visible(bufnr) then
            -- Buffer changes are not allowed in an <expr> mapping: run the action as a command.
            return ("<Cmd>lua require('holefill.keymaps').run(%d, %q)<CR>"):format(bufnr, name)
          end
          return fallback(lhs, chained)
        end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = DESC[name] })
      end
    end
  end
  M.actions = M.actions or {}
  M.actions[bufnr] = actions
end

function M.run(bufnr, name)
  local actions = M.actions and M.actions[bufnr]
  if actions and actions[name] then
    actions[name](bufnr)
  end
end

function M.remove(bufnr)
  if not api.nvim_buf_is_valid(bufnr) then
    return
  end
  for name, lhs in pairs(config.options.keymaps or {}) do
    if type(lhs) == "string" and lhs ~= "" then
      local m = api.nvim_buf_call(bufnr, function()
        return vim.fn.maparg(lhs, "i", false, true)
      end)
      if m and m.buffer == 1 and m.desc == DESC[name] then
        pcall(vim.keymap.del, "i", lhs, { buffer = bufnr })
      end
    end
  end
  if M.actions then
    M.actions[bufnr] = nil
  end
  M.skipped[bufnr] = nil
end

return M
