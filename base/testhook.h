/* Test hooks: what the fault-injection tests force (a rank killed while it
 * writes a checkpoint, a signal at a given step) is read here and only in
 * test builds (DT_BUILD_TESTS, which defines DT_TEST_HOOKS for this file):
 * in a build without the tests dt_test_hook always returns NULL and no
 * environment variable changes what the tool does. The hooks are listed in
 * docs/reliability.md ("Test hooks"). */
#ifndef DT_TESTHOOK_H
#define DT_TESTHOOK_H

/* The value of test hook `name` (an environment variable of that name in a
 * test build), or NULL when it is unset, empty or the build has no hooks. */
const char *dt_test_hook(const char *name);

#endif
