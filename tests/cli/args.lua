-- words after "--" reach the scenario as vlab.args
print(#vlab.args, table.concat(vlab.args, "|"))
