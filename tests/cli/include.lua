local m = vlab.machine{}
m:load_file("include_main.s")
m:run()
expect_eq(m.r1, 42)
