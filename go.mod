module amos.example/amosd

go 1.26
