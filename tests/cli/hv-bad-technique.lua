local hv = vlab.hypervisor{}
hv:vm{ technique = "magic" }
