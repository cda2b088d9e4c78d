--[[ Slides: "VMware: New Capabilities", "Copy-on-Write" -- linked clones and snapshots

One base disk image, two VMs.  Each VM gets a *linked clone* of the base:
a copy-on-write overlay (vlab's qcow2-style format, docs/disks.md) whose
clusters are allocated on the first write, after the old contents are
copied from the base; every cluster it does not hold is read from the base.
So both VMs boot from the same base, each sees its own writes, and the base
is never written.  Then a *snapshot* of one clone -- an overlay over the
overlay -- is taken, written, and either discarded (back to the snapshot)
or committed into the clone.

Each VM runs vlab-os: its process 5 reads sector 0 (from the base, through
the overlay) and its process 6 writes sector 4 (into the VM's own overlay).

    vlab slides-examples/11-linked-clones.lua --show notes,io

What to observe: "disk:" lines of each VM's device model, the summary's
"copy-on-write overlay:" lines (one cluster of its own per VM, copied from
the base on the first write), and the printed table.
]]
-- vlab-test: --show notes

local TEXT = "vlab-os reads its disk: hello from sector 0\n"
local base = vlab.disk{ sectors = 64 }          -- the base image (a scratch one here)
base:write(0, TEXT)
local before = base:read(0, 64)

local hv = vlab.hypervisor{ memory = 8 * 1024 * 1024, policy = "strict" }
local vms, disks = {}, {}
for i, t in ipairs{ "trap-and-emulate", "vt-x" } do
    disks[i] = base:overlay()                     -- a linked clone of the base
    vms[i] = hv:vm{ name = "clone" .. i, technique = t, memory = 256 * 1024 }
    vms[i]:attach_disk(disks[i])
    vms[i]:load_file("os.s")
end
hv:run()

for i = 1, 2 do
    local con = vms[i]:console()
    expect(con:find("sector 0 of the disk says: " .. TEXT, 1, true), "clone " .. i .. " read the base's sector 0")
    expect(con:find("wrote sector 4, read it back", 1, true), "clone " .. i .. " wrote its own sector 4")
    expect(disks[i]:read(4):find("vlab-os process 6 was here", 1, true), "the write is in the clone's overlay")
end
expect(base:read(0, 64) == before, "the base image is untouched")

print(string.format("%-8s %-17s %9s %14s %12s", "disk", "technique", "clusters", "copied (KiB)", "from base"))
for i = 1, 2 do
    local st = disks[i]:overlay_stats()
    print(string.format("%-8s %-17s %4d of %d %14d %12d", "clone" .. i, vms[i].technique, st.clusters_allocated,
                        st.clusters, st.bytes_copied // 1024, st.sectors_read_base))
    expect(st.clusters_allocated == 1, "one cluster of its own: the one holding sector 4")
end

-- A snapshot of clone 1: an overlay over its overlay.  Write, then discard.
local snap = disks[1]:overlay()
snap:write(10, "written after the snapshot\n")
expect(snap:read(10):find("written after the snapshot", 1, true), "the snapshot sees the write")
snap:discard()
expect(snap:read(10) == disks[1]:read(10), "discarded: back to the state at the snapshot")
-- Again, and commit it into clone 1 this time.
snap:write(10, "kept by a commit\n")
snap:commit()
expect(disks[1]:read(10):find("kept by a commit", 1, true), "committed into clone 1's overlay")
expect(not disks[2]:read(10):find("kept by a commit", 1, true), "clone 2 does not see it")
expect(base:read(0, 64) == before, "and the base is still untouched")
print("snapshot of clone1: discarded once, then committed into clone1; clone2 and the base unchanged")
