/* hello-bench: the smallest libmicrohttpd server, in the same threading
 * mode as our services (internal thread pool, a poll() loop per thread). It is the baseline
 * every HTTP benchmark is measured against in the same run.
 * Usage: hello-bench PORT THREADS; stops on SIGTERM/SIGINT. */
#include <microhttpd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
	static const char body[] = "{\"status\":\"ok\"}";
	static int marker;
	(void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
	/* Answer on the second call, once the request is complete, as
	 * libmicrohttpd's minimal_example.c does: answering on the first call
	 * makes libmicrohttpd close the connection after the response. */
	if (*con_cls != &marker) {
		*con_cls = &marker;
		return MHD_YES;
	}
	struct MHD_Response *r =
		MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	sigset_t set;
	int sig;
	unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 8090;
	unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD, (uint16_t)port, NULL,
	                                        NULL, answer, NULL, MHD_OPTION_THREAD_POOL_SIZE,
	                                        threads, MHD_OPTION_CONNECTION_LIMIT, 4096u,
	                                        MHD_OPTION_END);
	if (!d)
		return 1;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
