# caption stage (see the README).
