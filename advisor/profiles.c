/* Finding profiles: the profile directory ($SCALEWISE_PROFILES, else profiles/ beside the
 * executable, else the build-time SW_PROFILES_DIR), the sorted names of the profiles of one
 * kind (file stems of <dir>/<kind>/<name>.yaml), and loading a profile by name with a "did you
 * mean" for near misses. Parsing the files is hardware.c's (hw_load_file) and model.c's
 * (model_load_file). */
#include "advisor/advisor.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROFILES_MAX 4096 /* a ceiling on names per kind, far above what ships */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int put_path(char *out, size_t n, const char *path, struct sw_err *err)
{
    if (sw_strlcpy(out, path, n) >= n)
        return sw_errf(err, SW_ERANGE, "profile directory path is too long: '%s'", path);
    return 0;
}

int profiles_dir(char *out, size_t n, struct sw_err *err)
{
    const char *env = getenv("SCALEWISE_PROFILES");
    if (env && *env) {
        /* An explicit choice that is wrong is an error, not a reason to fall back silently. */
        if (!is_dir(env))
            return sw_errf(err, SW_ENOENT, "SCALEWISE_PROFILES='%s' is not a directory", env);
        return put_path(out, n, env, err);
    }
    char exe[PATH_MAX];
    sw_exe_dir(exe, sizeof(exe));
    if (exe[0]) {
        char cand[PATH_MAX + 16];
        snprintf(cand, sizeof(cand), "%s/profiles", exe);
        if (is_dir(cand))
            return put_path(out, n, cand, err);
    }
#ifdef SW_PROFILES_DIR
    if (is_dir(SW_PROFILES_DIR))
        return put_path(out, n, SW_PROFILES_DIR, err);
#endif
    return sw_errf(err, SW_ENOENT,
                   "cannot find the profile directory; set SCALEWISE_PROFILES to the "
                   "profiles/ folder of scalewise");
}

static const char *kind_dir(enum profile_kind kind)
{
    switch (kind) {
    case PROFILE_HARDWARE: return "hardware";
    case PROFILE_MODEL: return "models";
    case PROFILE_PLAN: return "plans";
    }
    return "?";
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int profiles_list(enum profile_kind kind, char ***names, int *count, struct sw_err *err)
{
    *names = NULL;
    *count = 0;
    char root[PATH_MAX], dir[PATH_MAX + 16];
    int rc = profiles_dir(root, sizeof(root), err);
    if (rc < 0)
        return rc;
    snprintf(dir, sizeof(dir), "%s/%s", root, kind_dir(kind));
    DIR *dp = opendir(dir);
    if (!dp)
        return sw_errf(err, errno == ENOENT ? SW_ENOENT : SW_EIO, "cannot open '%s': %s", dir,
                       strerror(errno));
    char **list = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (name[0] == '.' || len <= 5 || strcmp(name + len - 5, ".yaml") != 0)
            continue;
        if (n == PROFILES_MAX) {
            rc = sw_errf(err, SW_ERANGE, "more than %d profiles in '%s'", PROFILES_MAX, dir);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            list = sw_xrealloc(list, (size_t)cap * sizeof(*list));
        }
        list[n] = sw_xmalloc(len - 4);
        memcpy(list[n], name, len - 5);
        list[n][len - 5] = '\0';
        n++;
    }
    closedir(dp);
    if (rc < 0) {
        profiles_free_names(list, n);
        return rc;
    }
    if (n > 1)
        qsort(list, (size_t)n, sizeof(*list), cmp_names);
    *names = list;
    *count = n;
    return 0;
}

void profiles_free_names(char **names, int count)
{
    if (!names)
        return;
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* A profile name is a plain file stem: no path separators, no leading dot. */
static bool name_is_plain(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < HW_NAME_MAX;
}

/* The path of profile `name` of `kind`, or SW_ENOENT with the closest known name. */
static int resolve(enum profile_kind kind, const char *what, const char *name, char *path,
                   size_t n, struct sw_err *err)
{
    char root[PATH_MAX];
    int rc = profiles_dir(root, sizeof(root), err);
    if (rc < 0)
        return rc;
    if (name_is_plain(name)) {
        snprintf(path, n, "%s/%s/%s.yaml", root, kind_dir(kind), name);
        if (access(path, F_OK) == 0)
            return 0;
    }
    char **names = NULL;
    int count = 0;
    if (profiles_list(kind, &names, &count, NULL) < 0)
        count = 0;
    /* sw_suggest wants a NULL-terminated list. */
    const char **words = sw_xcalloc((size_t)count + 1, sizeof(*words));
    for (int i = 0; i < count; i++)
        words[i] = names[i];
    const char *near = sw_suggest(name, words);
    if (near)
        rc = sw_errf(err, SW_ENOENT, "unknown %s profile '%s'; did you mean '%s'?", what, name,
                     near);
    else
        rc = sw_errf(err, SW_ENOENT,
                     "unknown %s profile '%s'; `scalewise profiles --kind %s` lists them", what,
                     name, kind == PROFILE_HARDWARE ? "hardware" : "model");
    free(words);
    profiles_free_names(names, count);
    return rc;
}

int profile_load_hardware(const char *name, struct hardware *hw, struct sw_err *err)
{
    char path[PATH_MAX + HW_NAME_MAX + 32];
    int rc = resolve(PROFILE_HARDWARE, "hardware", name, path, sizeof(path), err);
    return rc < 0 ? rc : hw_load_file(path, hw, err);
}

int profile_load_model(const char *name, struct model_desc *m, struct sw_err *err)
{
    char path[PATH_MAX + HW_NAME_MAX + 32];
    int rc = resolve(PROFILE_MODEL, "model", name, path, sizeof(path), err);
    return rc < 0 ? rc : model_load_file(path, m, err);
}
