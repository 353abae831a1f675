"""How tools write a config, for the tests' Python writers on a mount
(fs_concurrency.sh, fs_crash.sh).  Each function returns once its close
returned, so the bytes are committed; errors propagate as OSError."""
import os

# O_TRUNC rewrites: one write, many small writes, one write and fsync.
IN_PLACE = ('trunc1', 'trunc_many', 'fsync')


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def rewrite(path, data, mode, rnd, chunk_max=4096, create=False):
    """Rewrite path in place (O_TRUNC) the way mode says (IN_PLACE);
    trunc_many writes chunks of 1 to chunk_max bytes."""
    flags = os.O_WRONLY | os.O_TRUNC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        if mode == 'trunc_many':
            i = 0
            while i < len(data):
                n = rnd.randint(1, chunk_max)
                write_all(fd, data[i:i + n])
                i += n
        else:
            write_all(fd, data)
            if mode == 'fsync':
                os.fsync(fd)
    finally:
        os.close(fd)


def create(path, data):
    """A new file (O_EXCL) holding data: the temp file of save-by-rename."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
