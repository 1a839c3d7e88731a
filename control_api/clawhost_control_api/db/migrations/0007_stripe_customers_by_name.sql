-- One fold per Customer reads the events of every Stripe customer mapped to it.
CREATE INDEX IF NOT EXISTS stripe_customers_customer_name ON stripe_customers (customer_name);
