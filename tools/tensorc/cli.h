/* Commands of the tensorc tool. Each takes (argc, argv) with argv[0] the command name and returns
 * the process exit code: 0 success, 1 failure, 2 bad usage. */
#ifndef TC_CLI_H
#define TC_CLI_H

typedef struct tc_cli_command {
    const char *name;
    const char *help;
    int (*fn)(int argc, char **argv);
} tc_cli_command;

int tc_cli_version(int argc, char **argv);
int tc_cli_ops(int argc, char **argv);
int tc_cli_check(int argc, char **argv);
int tc_cli_run(int argc, char **argv);

#endif
