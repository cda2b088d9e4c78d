start: li r1, 1
       bogus r1
       jmp nowhere
