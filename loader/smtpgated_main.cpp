#include <cstdio>
int main() { std::puts("smtpgated: not built yet"); return 1; }
