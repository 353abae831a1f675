/*
 * LD_PRELOAD shim for tests/fs_durability.sh: fdatasync() of a file whose
 * name ends in "-wal" fails with EIO while the file named by the
 * environment variable VERCONF_FAIL_SYNC exists; every other call is
 * libc's.  It stands for a disk that lost the store log's writes.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fdatasync(int fd)
{
	static int (*real_fdatasync)(int);
	const char *flag = getenv("VERCONF_FAIL_SYNC");
	char link[64], target[4096];
	ssize_t n;

	if (!real_fdatasync)
		real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (flag && access(flag, F_OK) == 0) {
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof target - 1);
		if (n > 4 && memcmp(target + n - 4, "-wal", 4) == 0) {
			errno = EIO;
			return -1;
		}
	}
	return real_fdatasync(fd);
}
