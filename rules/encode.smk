# encode stage (see the README).
