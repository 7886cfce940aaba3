/*
 * auth.c - an auth value for sealed objects, read from a file: never from
 * the command line or the environment, where other users or logs could
 * see it.  The file must be a regular file of the running user, readable
 * by nobody else, and hold at most SEC_AUTH_MAX bytes (one trailing
 * newline is dropped).  The value lands in locked memory.
 */
#include "secrets/sec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum wd_err
sec_read_auth_file(const char *path, struct sec_buf *out, size_t *len,
    char *err, size_t errlen)
{
	unsigned char tmp[SEC_AUTH_MAX + 2];
	struct stat st;
	ssize_t n;
	int fd;
	enum wd_err e;

	*len = 0;
	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		sec_errf(err, errlen, "auth file %s: %s", path, strerror(errno));
		return WD_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		close(fd);
		sec_errf(err, errlen, "auth file %s must be a regular file of this "
		    "user that no one else can read (chmod 600 %s)", path, path);
		return WD_EPERM;
	}
	n = read(fd, tmp, sizeof(tmp));
	close(fd);
	if (n > 0 && tmp[n - 1] == '\n')
		n--;
	if (n <= 0 || n > SEC_AUTH_MAX) {
		explicit_bzero(tmp, sizeof(tmp));
		sec_errf(err, errlen, "auth file %s must hold 1 to %d bytes", path,
		    SEC_AUTH_MAX);
		return WD_EINVAL;
	}
	if ((e = sec_buf_alloc(out, (size_t)n, err, errlen)) != WD_OK) {
		explicit_bzero(tmp, sizeof(tmp));
		return e;
	}
	memcpy(out->p, tmp, (size_t)n);
	explicit_bzero(tmp, sizeof(tmp));
	*len = (size_t)n;
	return WD_OK;
}
