-- holefill for Neovim >= 0.11: require("holefill").setup({...})
--
-- Registers `holefill serve` with vim.lsp.config / vim.lsp.enable. Ghost text: on 0.12+ the
-- native vim.lsp.inline_completion, on 0.11 this plugin's own (holefill.inline). Commands:
-- :HolefillResolve[!], :HolefillContext, :HolefillToggle. Health: :checkhealth holefill.

local config = require("holefill.config")
local keymaps = require("holefill.keymaps")

local api = vim.api

local M = {}

M.name = "holefill"

--- Model state per client id: {state = "loading"|"ready"|"failed", message = string}.
---@type table<integer, {state: string, message?: string}>
M.model = {}

local group = api.nvim_create_augroup("holefill", { clear = true })

local function use_native()
  return config.options.inline.native and require("holefill.native").available()
end

--- The implementation of ghost text in use ("native" or "plugin").
function M.mode()
  return use_native() and "native" or "plugin"
end

local function actions(impl, native)
  local t = {
    accept = function(b)
      return impl.accept(b, "all")
    end,
    accept_word = function(b)
      return impl.accept(b, "word")
    end,
    accept_line = function(b)
      return impl.accept(b, "line")
    end,
    next = function(b)
      return impl.cycle(b, 1)
    end,
    prev = function(b)
      return impl.cycle(b, -1)
    end,
    dismiss = function(b)
      return impl.dismiss(b)
    end,
  }
  if not native then
    t.trigger = function(b)
      return impl.trigger(b)
    end
  end
  return t
end

local function on_attach(client, bufnr)
  if not config.options.inline.enabled then
    return
  end
  if use_native() then
    local native = require("holefill.native")
    native.attach(bufnr, client.id)
    keymaps.apply(bufnr, actions(native, true), nil)
  else
    if not client:supports_method("textDocument/inlineCompletion", bufnr) then
      vim.notify_once("holefill: this server has no textDocument/inlineCompletion; no ghost text", vim.log.levels.WARN)
      return
    end
    local inline = require("holefill.inline")
    inline.attach(bufnr, client.id)
    keymaps.apply(bufnr, actions(inline, false), inline.visible)
  end
end

local function on_detach(bufnr)
  if use_native() then
    require("holefill.native").detach(bufnr)
  else
    require("holefill.inline").detach(bufnr)
  end
  keymaps.remove(bufnr)
end

--- The settings sent to the server (initializationOptions, didChangeConfiguration).
function M.server_settings()
  return vim.deepcopy(config.options.settings or {})
end

local function lsp_config()
  local o = config.options
  local cfg = {
    cmd = config.server_cmd(o),
    cmd_env = o.cmd_env,
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    init_options = M.server_settings(),
    -- Answers the server's workspace/configuration pull for section "holefill".
    settings = { holefill = M.server_settings() },
  }
  if o.inline.enabled and not use_native() then
    -- This plugin asks for inline completions itself: say so, so the server keeps the model's
    -- suggestion out of textDocument/completion (no duplicate in the completion menu).
    cfg.capabilities = { textDocument = { inlineCompletion = { dynamicRegistration = false } } }
  end
  return cfg
end

--- Clients of holefill, optionally for one buffer.
function M.clients(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
end

--- Change server settings at run time (e.g. {maxNewTokens = 16, model = "/models/x"}); sent to
--- running servers with workspace/didChangeConfiguration.
function M.configure(settings)
  config.options.settings = vim.tbl_extend("force", config.options.settings or {}, settings or {})
  vim.lsp.config(M.name, { init_options = M.server_settings(), settings = { holefill = M.server_settings() } })
  for _, client in ipairs(M.clients()) do
    client.settings = vim.tbl_deep_extend("force", client.settings or {}, { holefill = M.server_settings() })
    client:notify("workspace/didChangeConfiguration", { settings = { holefill = M.server_settings() } })
  end
end

--- A short status for statuslines: "holefill: loading" | "holefill: ready" | ... | "".
function M.status(bufnr)
  local clients = M.clients(bufnr or api.nvim_get_current_buf())
  if #clients == 0 then
    return ""
  end
  local m = M.model[clients[1].id]
  return "holefill: " .. (m and m.state or "starting")
end

local function track_progress()
  local tokens = {} -- client_id .. token -> true for model loads
  api.nvim_create_autocmd("LspProgress", {
    group = group,
    callback = function(ev)
      local data = ev.data or {}
      local client = data.client_id and vim.lsp.get_client_by_id(data.client_id)
      if not client or client.name ~= M.name then
        return
      end
      local params = data.params or {}
      local value = params.value or {}
      local key = data.client_id .. ":" .. tostring(params.token)
      if value.kind == "begin" and tostring(value.title or ""):match("model") then
        tokens[key] = true
        M.model[data.client_id] = { state = "loading", message = value.message }
        pcall(vim.cmd.redrawstatus)
      elseif value.kind == "report" and tokens[key] then
        M.model[data.client_id].message = value.message or M.model[data.client_id].message
      elseif value.kind == "end" and tokens[key] then
        tokens[key] = nil
        local msg = tostring(value.message or "")
        local state = msg:match("^ready") and "ready" or msg:match("^failed") and "failed" or "loading"
        M.model[data.client_id] = { state = state, message = msg }
        api.nvim_exec_autocmds("User", { pattern = "HolefillModel", modeline = false, data = M.model[data.client_id] })
        pcall(vim.cmd.redrawstatus)
      end
    end,
  })
end

local function commands()
  api.nvim_create_user_command("HolefillResolve", function(cmd)
    require("holefill.commands").resolve(api.nvim_get_current_buf(), cmd.bang)
  end, { bang = true, desc = "holefill: resolve the merge conflicts of the buffer (! writes it first)" })
  api.nvim_create_user_command("HolefillContext", function()
    require("holefill.commands").context(api.nvim_get_current_buf())
  end, { desc = "holefill: show the hole context at the cursor" })
  api.nvim_create_user_command("HolefillToggle", function()
    local ft = vim.bo.filetype
    local t = config.options.inline.filetypes
    t[ft] = not config.inline_enabled(ft)
    if not t[ft] then
      if use_native() then
        pcall(vim.lsp.inline_completion.enable, false, { bufnr = 0 })
      else
        require("holefill.inline").dismiss(api.nvim_get_current_buf())
      end
    elseif use_native() then
      pcall(vim.lsp.inline_completion.enable, true, { bufnr = 0 })
    end
    vim.notify(("holefill: inline suggestions %s for %s"):format(t[ft] and "on" or "off", ft))
  end, { desc = "holefill: toggle inline suggestions for this filetype" })
end

local function highlights()
  api.nvim_set_hl(0, "HolefillSuggestion", { link = "Comment", default = true })
  api.nvim_set_hl(0, "HolefillSuggestionCount", { link = "NonText", default = true })
end

---@param opts? holefill.Options
function M.setup(opts)
  if vim.fn.has("nvim-0.11") ~= 1 then
    vim.notify("holefill needs Neovim 0.11 or newer", vim.log.levels.ERROR)
    return
  end
  config.set(opts)
  api.nvim_clear_autocmds({ group = group })
  highlights()
  api.nvim_create_autocmd("ColorScheme", { group = group, callback = highlights })
  track_progress()
  api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        on_attach(client, ev.buf)
      end
    end,
  })
  api.nvim_create_autocmd("LspDetach", {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        on_detach(ev.buf)
      end
    end,
  })
  commands()
  vim.lsp.config(M.name, lsp_config())
  vim.lsp.enable(M.name)
  M.did_setup = true
end

return M
