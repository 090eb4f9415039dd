// A folder no hotswap_module declares.
