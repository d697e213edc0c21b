-- :checkhealth holefill

local M = {}

local health = vim.health

function M.check()
  local config = require("holefill.config")
  local holefill = require("holefill")

  health.start("holefill: Neovim")
  if vim.fn.has("nvim-0.11") == 1 then
    health.ok(("Neovim %s"):format(tostring(vim.version())))
  else
    health.error("Neovim 0.11 or newer is needed")
  end
  if not holefill.did_setup then
    health.warn('require("holefill").setup() was not called')
  end
  health.info("ghost text: " .. (holefill.mode() == "native" and "vim.lsp.inline_completion (native)" or "holefill's extmarks (0.11)"))

  health.start("holefill: server")
  local cmd = config.server_cmd()
  if vim.fn.executable(cmd[1]) == 1 then
    health.ok(("server executable found: %s"):format(vim.fn.exepath(cmd[1])))
    if #cmd >= 3 and cmd[2] == "-m" then
      local res = vim.system({ cmd[1], "-c", "import holefill" }, { text = true }):wait(20000)
      if res.code == 0 then
        health.ok(("`%s` has holefill installed"):format(cmd[1]))
      else
        health.error(("`%s` cannot import holefill"):format(cmd[1]), { "pip install holefill (in that environment)" })
      end
    end
  else
    health.error(("server executable not found: %s"):format(cmd[1]), {
      "pip install holefill, or point setup({python = ...}) / setup({cmd = ...}) at it",
    })
  end
  health.info("server command: " .. table.concat(cmd, " "))

  health.start("holefill: clients")
  local clients = holefill.clients()
  if #clients == 0 then
    health.warn("no holefill client is running (open a Python file)")
  end
  for _, client in ipairs(clients) do
    local bufs = vim.tbl_keys(client.attached_buffers or {})
    if #bufs > 0 then
      health.ok(("client %d attached to %d buffer(s)"):format(client.id, #bufs))
    else
      health.warn(("client %d attached to no buffer"):format(client.id))
    end
    local m = holefill.model[client.id]
    if m == nil then
      health.warn("model: no loading progress seen yet")
    elseif m.state == "ready" then
      health.ok("model " .. (m.message or "ready"))
    elseif m.state == "failed" then
      health.error("model " .. (m.message or "failed"))
    else
      health.warn("model loading" .. (m.message and (" (" .. m.message .. ")") or ""))
    end
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      health.ok("server offers textDocument/inlineCompletion")
    else
      health.warn("server does not offer textDocument/inlineCompletion")
    end
  end

  health.start("holefill: keys")
  local skipped = {}
  for buf, list in pairs(require("holefill.keymaps").skipped or {}) do
    for _, s in ipairs(list) do
      skipped[#skipped + 1] = ("%s (%s) in buffer %d: already mapped to %s"):format(s[2], s[1], buf, s[3])
    end
  end
  if #skipped == 0 then
    health.ok("no key conflicts")
  else
    for _, s in ipairs(skipped) do
      health.warn("not mapped: " .. s, { "choose another key in setup({keymaps = ...}), or force_keymaps = true" })
    end
  end
end

return M
