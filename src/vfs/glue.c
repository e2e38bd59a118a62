// SPDX-License-Identifier: GPL-2.0
/*
 * unionrs: C glue for the parts of the VFS that Rust cannot reach through
 * `kernel::bindings`: the fs_context API (its structs are opaque to bindgen
 * and its parameter table is built from macros), a few static inlines and
 * BIT() constants. No union logic lives here: every decision is made by the
 * Rust hooks declared below (implemented in src/vfs/fs_type.rs).
 */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fs_stack.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

/* Rust hooks (src/vfs/fs_type.rs). */
void *unionrs_rs_fc_alloc(void);
void unionrs_rs_fc_free(void *cfg);
int unionrs_rs_parse_param(struct fs_context *fc, void *cfg, int opt,
			   const char *string, struct file *file, u32 uint_32,
			   bool negated);
int unionrs_rs_fill_super(struct super_block *sb, struct fs_context *fc,
			  void *cfg);
int unionrs_rs_reconfigure(struct fs_context *fc, void *cfg);
void unionrs_rs_free_sb_info(void *info);

/* Exported to Rust (src/vfs/ffi.rs). */
int unionrs_register(struct module *owner);
void unionrs_unregister(void);
void unionrs_fc_log(struct fs_context *fc, char level, const char *msg);
bool unionrs_fc_is_reconfigure(struct fs_context *fc);
bool unionrs_fc_oldapi(struct fs_context *fc);
int unionrs_kern_path(const char *name, bool follow, struct path *path);
void unionrs_sb_set_rdonly(struct super_block *sb);
bool unionrs_sb_rdonly(struct super_block *sb);
bool unionrs_mnt_is_readonly(struct vfsmount *mnt);
void unionrs_copy_attr_all(struct inode *dest, const struct inode *src);
void unionrs_seq_show_option(struct seq_file *m, const char *name,
			     const char *value);

/*
 * Option numbers. They must match `params::Opt` (src/params.rs); the
 * values after the on/off ones exist so that the options container runtimes
 * pass to overlayfs (index=off, xino=auto, ...) are understood.
 */
enum {
	Opt_lowerdir,
	Opt_lowerdir_add,
	Opt_upperdir,
	Opt_workdir,
	Opt_userxattr,
	Opt_index,
	Opt_metacopy,
	Opt_nfs_export,
	Opt_redirect_dir,
	Opt_xino,
};

static const struct constant_table unionrs_param_bool[] = {
	{ "on", 1 },
	{ "off", 0 },
	{}
};

/* Same numbering as `params::RedirectDir`. */
static const struct constant_table unionrs_param_redirect_dir[] = {
	{ "off", 0 },
	{ "follow", 1 },
	{ "nofollow", 2 },
	{ "on", 3 },
	{}
};

/* Same numbering as `params::Xino`. */
static const struct constant_table unionrs_param_xino[] = {
	{ "off", 0 },
	{ "auto", 1 },
	{ "on", 2 },
	{}
};

static const struct fs_parameter_spec unionrs_param_spec[] = {
	fsparam_string_empty("lowerdir", Opt_lowerdir),
	fsparam_file_or_string("lowerdir+", Opt_lowerdir_add),
	fsparam_file_or_string("upperdir", Opt_upperdir),
	fsparam_file_or_string("workdir", Opt_workdir),
	fsparam_flag("userxattr", Opt_userxattr),
	fsparam_enum("index", Opt_index, unionrs_param_bool),
	fsparam_enum("metacopy", Opt_metacopy, unionrs_param_bool),
	fsparam_enum("nfs_export", Opt_nfs_export, unionrs_param_bool),
	fsparam_enum("redirect_dir", Opt_redirect_dir, unionrs_param_redirect_dir),
	fsparam_enum("xino", Opt_xino, unionrs_param_xino),
	{}
};

/*
 * Split the monolithic option string on unescaped commas, as overlayfs does,
 * so that "\," can appear inside a path.
 */
static char *unionrs_next_opt(char **s)
{
	char *sbegin = *s;
	char *p;

	if (!sbegin)
		return NULL;
	for (p = sbegin; *p; p++) {
		if (*p == '\\') {
			p++;
			if (!*p)
				break;
		} else if (*p == ',') {
			*p = '\0';
			*s = p + 1;
			return sbegin;
		}
	}
	*s = NULL;
	return sbegin;
}

static int unionrs_parse_monolithic(struct fs_context *fc, void *data)
{
	return vfs_parse_monolithic_sep(fc, data, unionrs_next_opt);
}

static int unionrs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, unionrs_param_spec, param, &result);
	if (opt < 0)
		return opt;
	return unionrs_rs_parse_param(fc, fc->fs_private, opt,
				      param->type == fs_value_is_string ? param->string : NULL,
				      param->type == fs_value_is_file ? param->file : NULL,
				      result.uint_32, result.negated);
}

static int unionrs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	return unionrs_rs_fill_super(sb, fc, fc->fs_private);
}

static int unionrs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, unionrs_fill_super);
}

static int unionrs_reconfigure(struct fs_context *fc)
{
	return unionrs_rs_reconfigure(fc, fc->fs_private);
}

static void unionrs_free_fc(struct fs_context *fc)
{
	if (fc->fs_private)
		unionrs_rs_fc_free(fc->fs_private);
	fc->fs_private = NULL;
}

static const struct fs_context_operations unionrs_context_ops = {
	.parse_monolithic = unionrs_parse_monolithic,
	.parse_param	  = unionrs_parse_param,
	.get_tree	  = unionrs_get_tree,
	.reconfigure	  = unionrs_reconfigure,
	.free		  = unionrs_free_fc,
};

static int unionrs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = unionrs_rs_fc_alloc();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &unionrs_context_ops;
	return 0;
}

/* Our per-superblock data refers to the layers: free it after the inodes. */
static void unionrs_kill_sb(struct super_block *sb)
{
	void *info = sb->s_fs_info;

	kill_anon_super(sb);
	if (info)
		unionrs_rs_free_sb_info(info);
}

static struct file_system_type unionrs_fs_type = {
	.name		 = "unionrs",
	.init_fs_context = unionrs_init_fs_context,
	.parameters	 = unionrs_param_spec,
	.kill_sb	 = unionrs_kill_sb,
};

int unionrs_register(struct module *owner)
{
	unionrs_fs_type.owner = owner;
	return register_filesystem(&unionrs_fs_type);
}

void unionrs_unregister(void)
{
	unregister_filesystem(&unionrs_fs_type);
}

/*
 * Log to the fs_context (what `mount` and fsopen() users read) and always to
 * the kernel log as well: logfc() only prints when there is no fc log.
 */
void unionrs_fc_log(struct fs_context *fc, char level, const char *msg)
{
	logfc(fc->log.log, "unionrs", level, "%s", msg);
	if (fc->log.log) {
		if (level == 'e')
			pr_err("unionrs: %s\n", msg);
		else if (level == 'w')
			pr_warn("unionrs: %s\n", msg);
		else
			pr_info("unionrs: %s\n", msg);
	}
}

bool unionrs_fc_is_reconfigure(struct fs_context *fc)
{
	return fc->purpose == FS_CONTEXT_FOR_RECONFIGURE;
}

bool unionrs_fc_oldapi(struct fs_context *fc)
{
	return fc->oldapi;
}

int unionrs_kern_path(const char *name, bool follow, struct path *path)
{
	return kern_path(name, follow ? LOOKUP_FOLLOW : 0, path);
}

void unionrs_sb_set_rdonly(struct super_block *sb)
{
	sb->s_flags |= SB_RDONLY;
}

bool unionrs_sb_rdonly(struct super_block *sb)
{
	return sb_rdonly(sb);
}

bool unionrs_mnt_is_readonly(struct vfsmount *mnt)
{
	return __mnt_is_readonly(mnt);
}

void unionrs_copy_attr_all(struct inode *dest, const struct inode *src)
{
	fsstack_copy_attr_all(dest, src);
}

void unionrs_seq_show_option(struct seq_file *m, const char *name,
			     const char *value)
{
	seq_show_option(m, name, value);
}

