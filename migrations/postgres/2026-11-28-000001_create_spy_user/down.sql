DROP TABLE spy_user;
