/* Billing (billing.c): plans and their prices, usage reports from the
 * regions, a tenant's usage, closing a period into invoices, and the
 * invoices. Route handlers for main.c's route table. */
#ifndef CP_BILLING_H
#define CP_BILLING_H

struct http_req;
enum http_result cp_plans_list(struct http_req *req);
enum http_result cp_plans_get(struct http_req *req);
enum http_result cp_plans_create(struct http_req *req);
enum http_result cp_plans_update(struct http_req *req);
enum http_result cp_usage_ingest(struct http_req *req);
enum http_result cp_tenant_usage(struct http_req *req);
enum http_result cp_period_close(struct http_req *req);
enum http_result cp_tenant_invoices(struct http_req *req);
enum http_result cp_invoice_get(struct http_req *req);
enum http_result cp_invoice_finalize(struct http_req *req);
enum http_result cp_invoice_void(struct http_req *req);

#endif
