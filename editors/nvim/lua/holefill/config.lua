-- Options of require("holefill").setup(): defaults and validation.

local M = {}

---@class holefill.Keymaps
---@field accept string|false accept the whole suggestion (falls back to the key's own action)
---@field accept_word string|false
---@field accept_line string|false
---@field next string|false next draft
---@field prev string|false previous draft
---@field dismiss string|false
---@field trigger string|false ask for a suggestion now

---@class holefill.Options
M.defaults = {
  -- Server command line. nil: `python -m holefill.cli serve` when `python` is set, else
  -- `holefill serve`.
  cmd = nil, ---@type string[]?
  python = nil, ---@type string? interpreter that has holefill installed
  cmd_env = nil, ---@type table<string,string>? extra environment for the server and the CLI
  filetypes = { "python" },
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", ".git" },
  -- Server settings (initializationOptions; change later with require("holefill").configure{}).
  settings = {
    -- model = "embedded", device = "auto", dtype = "auto", drafts = 3, maxNewTokens = 48,
  },
  inline = {
    enabled = true, -- false: register the server only (completion fallback, commands)
    -- Per filetype switch; "*" is the default for the others.
    filetypes = { ["*"] = true },
    auto_trigger = true, -- ask on typing pauses (else only with the trigger key)
    debounce_ms = 150,
    hl_group = "HolefillSuggestion", -- linked to Comment unless you define it
    count_hl_group = "HolefillSuggestionCount",
    show_count = true, -- "(2/3)" after the first line when there are several drafts
    -- Use Neovim's own vim.lsp.inline_completion when it exists (0.12+); false: always this
    -- plugin's renderer.
    native = true,
  },
  ---@type holefill.Keymaps
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    next = "<M-]>",
    prev = "<M-[>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
  -- Map keys even where another insert-mode mapping exists (Neovim's own default mappings,
  -- such as <Tab> for snippets, are always chained: they run when no suggestion is shown).
  force_keymaps = false,
}

M.options = vim.deepcopy(M.defaults)

---@param opts? table
---@return holefill.Options
function M.set(opts)
  opts = opts or {}
  vim.validate("opts.cmd", opts.cmd, "table", true)
  vim.validate("opts.python", opts.python, "string", true)
  vim.validate("opts.filetypes", opts.filetypes, "table", true)
  vim.validate("opts.settings", opts.settings, "table", true)
  vim.validate("opts.inline", opts.inline, "table", true)
  vim.validate("opts.keymaps", opts.keymaps, "table", true)
  local merged = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  -- Lists are replaced, not merged.
  for _, key in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if opts[key] ~= nil then
      merged[key] = opts[key]
    end
  end
  M.options = merged
  return merged
end

local function serve_index(cmd)
  for i = 2, #cmd do
    if cmd[i] == "serve" then
      return i
    end
  end
end

--- The holefill CLI without a subcommand. `cmd` may be that base (e.g. {"holefill"}) or a full
--- server command line (e.g. {"holefill", "serve", "--threads", "2"}: the part before "serve").
---@param o? holefill.Options
---@return string[]
function M.cli_base(o)
  o = o or M.options
  if o.cmd and #o.cmd > 0 then
    local i = serve_index(o.cmd)
    return vim.list_slice(o.cmd, 1, i and i - 1 or #o.cmd)
  end
  if o.python and o.python ~= "" then
    return { o.python, "-m", "holefill.cli" }
  end
  return { "holefill" }
end

---@param o? holefill.Options
---@return string[]
function M.server_cmd(o)
  o = o or M.options
  if o.cmd and #o.cmd > 0 and serve_index(o.cmd) then
    return vim.list_slice(o.cmd)
  end
  local cmd = M.cli_base(o)
  cmd[#cmd + 1] = "serve"
  return cmd
end

--- Whether inline suggestions are on for a filetype.
---@param ft string
---@param o? holefill.Options
function M.inline_enabled(ft, o)
  o = o or M.options
  if not o.inline.enabled then
    return false
  end
  local t = o.inline.filetypes or {}
  if t[ft] ~= nil then
    return t[ft] and true or false
  end
  if t["*"] ~= nil then
    return t["*"] and true or false
  end
  return true
end

return M
