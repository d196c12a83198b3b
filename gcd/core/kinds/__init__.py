"""One module per kind of object: its policy section, keep rules and decisions. Kinds do
not import each other."""
