-- a machine has 1 to 8 physical CPUs
vlab.hypervisor{ cpus = 9 }
