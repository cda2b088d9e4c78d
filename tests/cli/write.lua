vlab.write_file("out.txt", "hello\n")
print(pcall(vlab.write_file, "../escape.txt", "x"))
