        .equ ANSWER, 42
