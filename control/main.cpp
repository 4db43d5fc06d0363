#include <cstdio>
int main() { std::puts("smtpgatectl: not built yet"); return 1; }
