-- hosted takes true, false or a host image file
vlab.hypervisor{ hosted = 3 }
