CREATE TABLE "reconcile_state" (
	"name" text PRIMARY KEY NOT NULL,
	"watermark" timestamp with time zone,
	"sweep_until" timestamp with time zone,
	"cursor" text,
	"last_sweep_at" timestamp with time zone,
	"last_error" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
