DROP TABLE spy_customer;
