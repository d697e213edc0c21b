-- Pure logic of ghost text: no buffers, no LSP. Unit-tested by tests/unit.lua.
--
-- A suggestion is the text to insert at the cursor. These functions split it into what an
-- extmark shows (first line inline, the rest as virtual lines), take the next word or line of it
-- for partial accepts, follow the user typing through it, and normalise LSP inline items.

local M = {}

--- Lines of a text ("\n" separated; a trailing "\n" gives a last empty line).
---@param text string
---@return string[]
function M.lines(text)
  return vim.split(text, "\n", { plain = true })
end

--- Extmark options showing `text` at a cursor on a line whose text after the cursor is `after`.
--- The first line is inline virtual text at the cursor (it pushes any text after the cursor to
--- the right; "eol" text would start one cell after the line end, out of place at the cursor);
--- the other lines are virtual lines below. (Text after the cursor stays where it is while
--- shown; accepting puts it after the suggestion's last line.)
---@param text string
---@param after string text of the line after the cursor (not used by the layout today)
---@param hl string highlight group
---@return table opts for nvim_buf_set_extmark (without the namespace/row/col)
function M.extmark_opts(text, after, hl)
  local lines = M.lines(text)
  local opts = {
    virt_text = { { lines[1], hl } },
    virt_text_pos = "inline",
    hl_mode = "combine",
  }
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      virt_lines[#virt_lines + 1] = { { lines[i], hl } }
    end
    opts.virt_lines = virt_lines
  end
  return opts
end

--- The text an extmark from `extmark_opts` shows, lines joined with "\n". For tests and checks.
---@param details table extmark details (nvim_buf_get_extmark_by_id(..., {details = true})[3])
---@return string
function M.shown_text(details)
  local function join(chunks)
    local parts = {}
    for _, chunk in ipairs(chunks or {}) do
      parts[#parts + 1] = chunk[1]
    end
    return table.concat(parts)
  end
  local out = { join(details.virt_text) }
  for _, line in ipairs(details.virt_lines or {}) do
    out[#out + 1] = join(line)
  end
  return table.concat(out, "\n")
end

--- The next word of a suggestion: leading blanks (and a line break with the next line's
--- indentation), then a run of word characters or a run of other non-blank characters.
---@param text string
---@return string
function M.next_word(text)
  if text == "" then
    return ""
  end
  local lead = text:match("^[ \t]*\n[ \t]*") or text:match("^[ \t]*")
  local rest = text:sub(#lead + 1)
  local word = rest:match("^[%w_\128-\255]+") or rest:match("^[^%w_%s\128-\255]+") or ""
  if lead == "" and word == "" then
    return text:sub(1, 1)
  end
  return lead .. word
end

--- The next line of a suggestion: the rest of the current line; when the suggestion continues
--- on a new line, that line break and the next line.
---@param text string
---@return string
function M.next_line(text)
  local nl = text:find("\n", 1, true)
  if nl == nil then
    return text
  end
  if nl > 1 then
    return text:sub(1, nl - 1)
  end
  local second = text:find("\n", 2, true)
  return second and text:sub(1, second - 1) or text
end

--- What is left of a suggestion once `typed` was inserted at its start; nil when `typed` is not
--- a prefix of it (the suggestion no longer applies).
---@param text string
---@param typed string
---@return string?
function M.advance(text, typed)
  if typed == "" then
    return text
  end
  if #typed <= #text and text:sub(1, #typed) == typed then
    return text:sub(#typed + 1)
  end
  return nil
end

--- Next index when cycling through `n` drafts by `step` (wraps around).
---@param index integer
---@param n integer
---@param step integer
---@return integer
function M.cycle(index, n, step)
  if n <= 0 then
    return 1
  end
  return (index - 1 + step) % n + 1
end

--- Plain text of an LSP insertText (a string, or a snippet StringValue: placeholders are
--- replaced by their defaults, tab stops dropped).
---@param insert string|{kind: string, value: string}
---@return string
function M.plain(insert)
  if type(insert) == "string" then
    return insert
  end
  local value = insert.value or ""
  if insert.kind == "snippet" then
    -- Escaped characters (\$, \}, \\) are set aside while placeholders are replaced.
    local escaped = {}
    value = value:gsub("\\([$}\\])", function(c)
      escaped[#escaped + 1] = c
      return "\0" .. #escaped .. "\0"
    end)
    for _ = 1, 5 do -- nested placeholders
      value = value:gsub("%${%d+:([^{}]*)}", "%1"):gsub("%${%d+|([^,|]*)[^|]*|}", "%1")
    end
    value = value:gsub("%${%d+}", ""):gsub("%$%d+", "")
    value = value:gsub("%z(%d+)%z", function(i)
      return escaped[tonumber(i)]
    end)
  end
  return value
end

--- The part of each inline item to show as ghost text at the cursor, unique and non-blank.
--- `items` hold {text, start = {row, col}, finish = {row, col}} in bytes (0-based); `line` is
--- the cursor's line and {row, col} the cursor. An item whose range starts before the cursor
--- must re-spell the text between its start and the cursor (which is then cut off); an item
--- that replaces text after the cursor, or changes text before it, is left out.
---@param items {text: string, start: integer[], finish: integer[]}[]
---@param line string
---@param row integer
---@param col integer
---@return string[]
function M.ghost_texts(items, line, row, col)
  local out, seen = {}, {}
  for _, item in ipairs(items) do
    local text = item.text
    local s, e = item.start, item.finish
    local ok = s[1] == row and e[1] == row and s[2] <= col and e[2] >= col
    if ok and s[2] < col then
      local before = line:sub(s[2] + 1, col)
      text = M.advance(text, before)
      ok = text ~= nil
    end
    if ok and e[2] > col then
      -- Replaces text after the cursor: show it only when the item keeps that text at its end.
      local replaced = line:sub(col + 1, e[2])
      if text:sub(-#replaced) == replaced then
        text = text:sub(1, #text - #replaced)
      else
        ok = false
      end
    end
    if ok and text:match("%S") and not seen[text] then
      seen[text] = true
      out[#out + 1] = text
    end
  end
  return out
end

return M
