"""This host's own files and filesystems: the state directory, its lock, who may write
them, and disk usage."""
