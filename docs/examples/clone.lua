-- VM fork and copy-on-write memory from Lua (docs/lua-api.md,
-- docs/hypervisor.md "Copy-on-write memory"): clone a VM, let the clone
-- write one page, read the footprints and the frame table, run the
-- sharing scanner, destroy the clone.
--
--     vlab docs/examples/clone.lua --show notes,cow
-- vlab-test: --show notes,cow
local hv = vlab.hypervisor{ memory = 2 * 1024 * 1024 }
local vm = hv:vm{ name = "original", memory = 64 * 1024 }
vm:load([[
        .org 0x1000
start:  li    r1, 0x8000
        st    [r1], r2          ; writes r2 into page 8
        hlt
]])
local copy = vm:clone{ name = "copy" }       -- shares all 16 pages
print("after the clone, the copy owns", copy:footprint().own, "frames")
copy.r2 = 42                                  -- the two will write different values
expect_eq(hv:run().reason, "halt")
print("original: page 8 holds", vm:read32(0x8000), "-- copy:", copy:read32(0x8000))
local f = copy:footprint()
print("the copy owns", f.own, "frame(s), made", f.copies, "copy(ies) and got",
      f.restores, "write permission(s) back")
local t = hv:frames()
print(t.mappings, "guest pages in", t.guest, "frames; sharing saves", t.saved_kib, "KiB")
local s = hv:share_pages()
print("the scanner merged", s.merged, "pages and freed", s.freed, "frames")
print(hv:frames().guest, "frames now; the original maps", vm:footprint().frames, "of them")
expect(hv:check_frames())
expect_eq(copy:read32(0x8000), 42)
expect_eq(vm:read32(0x8000), 0)
local before = hv:frames().free
copy:destroy()                                -- its own frame goes back to the host
print("destroyed the copy:", hv:frames().free - before, "frames freed (its page, its shadow tables)")
expect(copy.destroyed)
expect(hv:check_frames())
