-- An event counts as handled once its customer's fold reached the Customer object: a redelivery of an
-- event whose fold failed (API server down, 5xx answered) folds again instead of being dropped as a duplicate.
ALTER TABLE stripe_events ADD COLUMN synced boolean NOT NULL DEFAULT false;
