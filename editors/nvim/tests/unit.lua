-- Unit tests of the plugin's logic, run by headless Neovim (no server):
--   nvim --headless --clean -l editors/nvim/tests/unit.lua OUT.json
-- Writes {"passed": [...], "failed": [{"name":..., "error":...}]} to OUT.json and exits 0 when
-- all passed.

local here = debug.getinfo(1, "S").source:sub(2)
local plugin = vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(here, ":p"))))
vim.opt.rtp:prepend(plugin)

local out = arg[1] or "unit-results.json"
local results = { passed = {}, failed = {} }

local function test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    table.insert(results.passed, name)
  else
    table.insert(results.failed, { name = name, error = tostring(err) })
  end
end

local function eq(a, b, what)
  if not vim.deep_equal(a, b) then
    error(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", vim.inspect(b), vim.inspect(a)), 2)
  end
end

local ghost = require("holefill.ghost")
local config = require("holefill.config")

test("next_word", function()
  eq(ghost.next_word("return self.items"), "return")
  eq(ghost.next_word(" self.items"), " self")
  eq(ghost.next_word(".items[name]"), ".")
  eq(ghost.next_word("(name)"), "(")
  eq(ghost.next_word("]) * 2"), "])")
  eq(ghost.next_word("\n        return x"), "\n        return")
  eq(ghost.next_word("  \n  x"), "  \n  x")
  eq(ghost.next_word("éa b"), "éa")
  eq(ghost.next_word("   "), "   ")
  eq(ghost.next_word(""), "")
end)

test("next_line", function()
  eq(ghost.next_line("total = 0\n        for x in y:"), "total = 0")
  eq(ghost.next_line("\n        for x in y:\n            pass"), "\n        for x in y:")
  eq(ghost.next_line("\n        pass"), "\n        pass")
  eq(ghost.next_line("x"), "x")
end)

test("advance", function()
  eq(ghost.advance("return x", ""), "return x")
  eq(ghost.advance("return x", "ret"), "urn x")
  eq(ghost.advance("return x", "return x"), "")
  eq(ghost.advance("return x", "rx"), nil)
  eq(ghost.advance("ab", "abc"), nil)
end)

test("cycle wraps around", function()
  eq(ghost.cycle(1, 3, 1), 2)
  eq(ghost.cycle(3, 3, 1), 1)
  eq(ghost.cycle(1, 3, -1), 3)
  eq(ghost.cycle(1, 1, 1), 1)
  eq(ghost.cycle(1, 0, 1), 1)
end)

test("plain text of insertText", function()
  eq(ghost.plain("x = 1"), "x = 1")
  eq(ghost.plain({ kind = "snippet", value = "foo(${1:a}, ${2:b})$0" }), "foo(a, b)")
  eq(ghost.plain({ kind = "snippet", value = "x = ${1|one,two|}" }), "x = one")
  eq(ghost.plain({ kind = "snippet", value = "cost \\$5" }), "cost $5")
end)

test("ghost texts from items", function()
  local line = "    return sel"
  local row, col = 3, #line
  local at = { row, col }
  local items = {
    { text = "f.items", start = at, finish = at },
    { text = "f.items", start = at, finish = at }, -- duplicate
    { text = "   ", start = at, finish = at }, -- blank
    { text = "self.total", start = { row, 11 }, finish = at }, -- re-spells "sel"
    { text = "other", start = { row, 11 }, finish = at }, -- does not: left out
    { text = "x", start = { row - 1, 0 }, finish = at }, -- another line: left out
  }
  eq(ghost.ghost_texts(items, line, row, col), { "f.items", "f.total" })
  -- Replacing a closing bracket after the cursor that the item keeps at its end.
  local l2 = "print()"
  eq(ghost.ghost_texts({ { text = "x)", start = { 0, 6 }, finish = { 0, 7 } } }, l2, 0, 6), { "x" })
  eq(ghost.ghost_texts({ { text = "x]", start = { 0, 6 }, finish = { 0, 7 } } }, l2, 0, 6), {})
end)

test("extmark options: inline at the cursor, virt_lines for the other lines", function()
  local o = ghost.extmark_opts("return 1", "", "G")
  eq(o.virt_text, { { "return 1", "G" } })
  eq(o.virt_text_pos, "inline")
  eq(o.virt_lines, nil)
  o = ghost.extmark_opts("a = 1\n    b = 2\n", ")", "G")
  eq(o.virt_text_pos, "inline")
  eq(o.virt_lines, { { { "    b = 2", "G" } }, { { "", "G" } } })
  eq(ghost.shown_text(o), "a = 1\n    b = 2\n")
end)

test("config: command lines and per-filetype switch", function()
  config.set({})
  eq(config.server_cmd(), { "holefill", "serve" })
  eq(config.cli_base(), { "holefill" })
  config.set({ python = "/venv/bin/python" })
  eq(config.server_cmd(), { "/venv/bin/python", "-m", "holefill.cli", "serve" })
  eq(config.cli_base(), { "/venv/bin/python", "-m", "holefill.cli" })
  config.set({ cmd = { "holefill", "serve", "--threads", "2" }, python = "/x" })
  eq(config.server_cmd(), { "holefill", "serve", "--threads", "2" })
  eq(config.cli_base(), { "holefill" })
  config.set({ cmd = { "uvx", "holefill" } })
  eq(config.server_cmd(), { "uvx", "holefill", "serve" })
  config.set({ inline = { filetypes = { ["*"] = false, python = true } } })
  eq(config.inline_enabled("python"), true)
  eq(config.inline_enabled("lua"), false)
  eq(config.options.inline.debounce_ms, 150, "defaults kept")
  config.set({ inline = { enabled = false } })
  eq(config.inline_enabled("python"), false)
  config.set({})
end)

-- Buffer-level: ghost text rendering, partial accepts, cycling, typing through.
local inline = require("holefill.inline")
vim.o.virtualedit = "onemore" -- the cursor may sit after the last character, as in insert mode

local function buffer(lines, row, col)
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_win_set_cursor(0, { row, col })
  return buf
end

local function text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

test("ghost text extmark holds the draft", function()
  local buf = buffer({ "def f(x):", "    return " }, 2, 11)
  inline._show(buf, { "x * 2\n\nprint(f(1))" })
  local cur = inline.current(buf)
  eq(cur.row, 1)
  eq(cur.col, 11)
  eq(cur.shown_text, "x * 2\n\nprint(f(1))")
  eq(cur.details.virt_text_pos, "inline")
  eq(#cur.details.virt_lines, 2)
  eq(cur.details.virt_text[1][2], "HolefillSuggestion")
  inline.detach(buf)
end)

test("accept word, then line, then all", function()
  local buf = buffer({ "def f(x):", "    " }, 2, 4)
  inline._show(buf, { "total = x + 1\n    return total" })
  assert(inline.accept(buf, "word"))
  eq(text(buf), "def f(x):\n    total")
  eq(inline.current(buf).shown_text, " = x + 1\n    return total")
  assert(inline.accept(buf, "line"))
  eq(text(buf), "def f(x):\n    total = x + 1")
  eq(inline.current(buf).shown_text, "\n    return total")
  assert(inline.accept(buf, "line"))
  eq(text(buf), "def f(x):\n    total = x + 1\n    return total")
  eq(vim.api.nvim_win_get_cursor(0), { 3, 16 })
  eq(inline.current(buf), nil, "nothing left to show")
  eq(inline.accept(buf, "all"), false)
  inline.detach(buf)
end)

test("accept all inserts every line and puts the cursor at the end", function()
  local buf = buffer({ "x = [", "]" }, 1, 5)
  inline._show(buf, { "1,\n    2," })
  assert(inline.accept(buf))
  eq(text(buf), "x = [1,\n    2,\n]")
  eq(vim.api.nvim_win_get_cursor(0), { 2, 6 })
  inline.detach(buf)
end)

test("text after the cursor: kept after the insert", function()
  local buf = buffer({ "print()" }, 1, 6)
  inline._show(buf, { "'hi'" })
  eq(inline.current(buf).details.virt_text_pos, "inline")
  inline.accept(buf)
  eq(text(buf), "print('hi')")
  inline.detach(buf)
end)

test("cycling through drafts; a no-op with one draft", function()
  local buf = buffer({ "x = " }, 1, 4)
  inline._show(buf, { "1", "2", "3" })
  eq(inline.current(buf).details.virt_text[1][1], "1")
  local marks = vim.api.nvim_buf_get_extmarks(buf, inline.ns, 0, -1, { details = true })
  eq(#marks, 2, "ghost text and the (1/3) count")
  local counts = vim.tbl_filter(function(m)
    return m[4].virt_text[1][1] == " (1/3)"
  end, marks)
  eq(#counts, 1)
  inline.cycle(buf, 1)
  eq(inline.current(buf).shown_text, "2")
  inline.cycle(buf, -1)
  inline.cycle(buf, -1)
  eq(inline.current(buf).shown_text, "3")
  eq(inline.current(buf).index, 3)
  inline.accept(buf)
  eq(text(buf), "x = 3")
  inline.detach(buf)

  buf = buffer({ "y = " }, 1, 4)
  inline._show(buf, { "only" })
  assert(inline.cycle(buf, 1))
  eq(inline.current(buf).shown_text, "only")
  eq(#vim.api.nvim_buf_get_extmarks(buf, inline.ns, 0, -1, {}), 1, "no count for one draft")
  inline.detach(buf)
end)

test("typing through the ghost text keeps it; typing something else drops it", function()
  local buf = buffer({ "z = " }, 1, 4)
  inline._show(buf, { "compute(1)", "count" })
  vim.api.nvim_buf_set_text(buf, 0, 4, 0, 4, { "co" })
  vim.api.nvim_win_set_cursor(0, { 1, 6 })
  assert(inline.refresh(buf))
  eq(inline.current(buf).shown_text, "mpute(1)")
  vim.api.nvim_buf_set_text(buf, 0, 6, 0, 6, { "u" })
  vim.api.nvim_win_set_cursor(0, { 1, 7 })
  assert(inline.refresh(buf))
  eq(inline.current(buf).shown_text, "nt", "the other draft still applies")
  vim.api.nvim_buf_set_text(buf, 0, 7, 0, 7, { "x" })
  vim.api.nvim_win_set_cursor(0, { 1, 8 })
  eq(inline.refresh(buf), false)
  eq(inline.current(buf), nil)
  inline.detach(buf)
end)

test("dismiss hides the ghost text", function()
  local buf = buffer({ "a" }, 1, 1)
  inline._show(buf, { "bc" })
  eq(inline.dismiss(buf), true)
  eq(inline.current(buf), nil)
  eq(#vim.api.nvim_buf_get_extmarks(buf, inline.ns, 0, -1, {}), 0)
  inline.detach(buf)
end)

-- Key mappings.
local keymaps = require("holefill.keymaps")

test("keys: built-in <Tab> is chained, user mappings are kept unless forced", function()
  config.set({})
  local buf = buffer({ "" }, 1, 0)
  vim.keymap.set("i", "<M-]>", "<Nop>", { buffer = buf, desc = "user mapping" })
  local calls = {}
  local actions = {}
  for _, name in ipairs({ "accept", "accept_word", "accept_line", "next", "prev", "dismiss", "trigger" }) do
    actions[name] = function()
      table.insert(calls, name)
      return true
    end
  end
  keymaps.apply(buf, actions, function()
    return false
  end)
  local tab = vim.fn.maparg("<Tab>", "i", false, true)
  eq(tab.desc, "holefill: accept the suggestion")
  eq(tab.buffer, 1)
  -- No suggestion: <Tab> does what Neovim's default <Tab> does (a literal <Tab> outside snippets).
  eq(tab.callback(), "<Tab>")
  eq(vim.fn.maparg("<M-]>", "i", false, true).desc, "user mapping")
  eq(#keymaps.skipped[buf], 1)
  eq(keymaps.skipped[buf][1][1], "next")
  -- The trigger key always runs.
  eq(vim.fn.maparg("<M-\\>", "i", false, true).callback(), ("<Cmd>lua require('holefill.keymaps').run(%d, \"trigger\")<CR>"):format(buf))
  keymaps.run(buf, "trigger")
  eq(calls, { "trigger" })
  keymaps.remove(buf)
  eq(vim.fn.maparg("<Tab>", "i", false, true).desc, "vim.snippet.jump if active, otherwise <Tab>")
  eq(vim.fn.maparg("<M-]>", "i", false, true).desc, "user mapping")

  config.set({ force_keymaps = true, keymaps = { accept = "<C-l>", accept_word = false } })
  keymaps.apply(buf, actions, function()
    return true
  end)
  eq(vim.fn.maparg("<M-]>", "i", false, true).desc, "holefill: next draft")
  eq(vim.fn.maparg("<C-l>", "i", false, true).callback(), ("<Cmd>lua require('holefill.keymaps').run(%d, \"accept\")<CR>"):format(buf))
  eq(vim.fn.maparg("<M-Right>", "i", false, true), {}, "accept_word switched off")
  keymaps.remove(buf)
  config.set({})
end)

test("native inline completion is used only where Neovim has it (0.12+)", function()
  local native = require("holefill.native")
  eq(native.available(), type(vim.lsp.inline_completion) == "table")
  config.set({})
  eq(require("holefill").mode(), native.available() and "native" or "plugin")
  config.set({ inline = { native = false } })
  eq(require("holefill").mode(), "plugin")
  config.set({})
end)

-- CLI helpers.
local cli = require("holefill.commands")

test("resolve output and messages", function()
  local hunks = cli.parse_resolve(vim.json.encode({
    { path = "a.py", hunk = 0, status = "resolved", pattern = "OURS", confidence = 0.9, text = "x" },
    { path = "a.py", hunk = 1, status = "abstained", confidence = 0.1 },
  }))
  eq(#hunks, 2)
  eq(cli.summarize(hunks), "holefill: resolved 1 of 2 conflicts; 1 left for you (the resolver abstained)")
  eq(#cli.parse_resolve('{"files": [{"hunks": [{"hunk": 0, "status": "resolved"}]}]}'), 1)
  eq(cli.parse_resolve("not json"), nil)
  eq(cli.summarize({}), "holefill: no merge conflicts in this file")
  eq(
    cli.explain({ "holefill" }, "resolve", { code = 2, stderr = "error: argument command: invalid choice: 'resolve' (choose" }),
    "holefill: this holefill has no `resolve` command yet; update holefill"
  )
  eq(cli.explain({ "nope" }, "context", { code = -1 }, "ENOENT: no such file"):match("was not found") ~= nil, true)
end)

test("cursor location counts characters", function()
  local buf = buffer({ "s = '😀é' + os" }, 1, #"s = '😀é' + ")
  local line, col = cli.cursor_location(buf, 0)
  eq(line, 1)
  eq(col, 12) -- 11 characters before the cursor (the emoji is one; it is 4 bytes, 2 UTF-16 units)
end)

local f = assert(io.open(out, "w"))
f:write(vim.json.encode(results))
f:close()
for _, failure in ipairs(results.failed) do
  io.stderr:write(("FAIL %s\n%s\n"):format(failure.name, failure.error))
end
io.stderr:write(("%d passed, %d failed\n"):format(#results.passed, #results.failed))
os.exit(#results.failed == 0 and 0 or 1)
