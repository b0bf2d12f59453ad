module hfita/go_template

go 1.22
