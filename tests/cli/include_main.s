        .include "include_lib.s"
start:  li r1, ANSWER
        hlt
